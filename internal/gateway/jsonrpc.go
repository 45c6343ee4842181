package gateway

import "encoding/json"

// upstreamMessage is what the gateway reads from a message an upstream
// sends. The upstream is trusted about its own messages; these are read
// only to route them and to filter list results.
type upstreamMessage struct {
	ID     json.RawMessage `json:"id"`
	Method *string         `json:"method"`
	Params struct {
		ProgressToken json.RawMessage `json:"progressToken"`
		Meta          struct {
			SubscriptionID json.RawMessage `json:"io.modelcontextprotocol/subscriptionId"`
		} `json:"_meta"`
	} `json:"params"`
}
