package main

import "golang.org/x/sys/unix"

// echoOff turns the terminal fd's echo off. term.ReadPassword does so
// too, but only once called, after the prompt is out: a line typed or
// pasted as the prompt appears would be echoed.
func echoOff(fd int) error {
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	tio.Lflag &^= unix.ECHO
	return unix.IoctlSetTermios(fd, unix.TCSETS, tio)
}
