// Command conformance-fixture serves the conformance fixture
// (test/interop/conformancefixture) over stdio, or over Streamable HTTP with
// -http, for the interop tests: the gateway's stdio placement runs it as its
// upstream process.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/gatehouse-mcp/gatehouse/test/interop/conformancefixture"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	addr := flag.String("http", "", "serve Streamable HTTP at this address instead of stdio")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	server := conformancefixture.New()
	go conformancefixture.Updates(ctx, server, 3*time.Second)
	var err error
	if *addr != "" {
		fmt.Fprintf(os.Stderr, "conformance-fixture: listening at %s\n", *addr)
		err = http.ListenAndServe(*addr, conformancefixture.Handler(server))
	} else {
		err = server.Run(ctx, &mcp.StdioTransport{})
	}
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "conformance-fixture: %v\n", err)
		os.Exit(1)
	}
}
