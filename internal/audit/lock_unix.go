//go:build unix

package audit

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockState takes an exclusive lock on path+".lock" for the life of the
// process (or until release): two `bulwark audit watch` processes sharing
// a state file would each rewrite it whole, losing the other's progress.
// The kernel drops the lock when the process dies, so none goes stale.
func lockState(path string) (release func(), err error) {
	lock := path + ".lock"
	fh, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", lock, err)
	}
	if err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fh.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another process (%s is locked): give each bulwark audit watch its own state files", path, lock)
		}
		return nil, fmt.Errorf("lock %s: %w", lock, err)
	}
	return func() { fh.Close() }, nil
}
