//go:build !linux

package testimage

import "errors"

// unmountBelow has nothing to do where chroot builds cannot run.
func unmountBelow(string) error { return nil }

func mountProc(string) (func(), error) { return nil, errors.New("mounting proc needs Linux") }
