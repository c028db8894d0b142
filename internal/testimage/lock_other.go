//go:build !unix

package testimage

import (
	"context"
	"errors"
	"log/slog"
)

func lockPath(context.Context, string, *slog.Logger) (func(), error) {
	return nil, errors.New("test image cache locking needs a unix system")
}
