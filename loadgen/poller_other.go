//go:build !linux

package loadgen

import "errors"

const pollerAvailable = false

func newEpollReader(int) (linkPoller, error) {
	return nil, errors.New("no epoll on this system")
}
