//go:build !linux

package main

// echoOff is a no-op here: term.ReadPassword turns echo off once called,
// which leaves a line typed ahead of the prompt echoed.
func echoOff(fd int) error { return nil }
