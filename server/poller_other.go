//go:build !linux

package server

import "errors"

func newPoller(func(*conn)) (poller, error) {
	return nil, errors.New("readiness-driven reads need Linux (epoll)")
}
