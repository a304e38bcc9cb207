package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// appendCommand writes args to buf as a RESP array of bulk strings.
func appendCommand(buf *bytes.Buffer, args ...string) {
	fmt.Fprintf(buf, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(buf, "$%d\r\n%s\r\n", len(a), a)
	}
}

// reader reads RESP2 replies (the protocol a connection speaks until it
// says HELLO 3).
type reader struct{ br *bufio.Reader }

func newReader(r io.Reader) *reader { return &reader{br: bufio.NewReader(r)} }

// maxBulk bounds a bulk string or array length from the server.
const maxBulk = 512 << 20

// line reads one CRLF-terminated line, without the CRLF.
func (r *reader) line() (string, error) {
	s, err := r.br.ReadString('\n')
	if err != nil {
		return "", err
	}
	if len(s) < 2 || s[len(s)-2] != '\r' {
		return "", fmt.Errorf("resp: line without CRLF: %q", s)
	}
	return s[:len(s)-2], nil
}

// read reads one reply.
func (r *reader) read() (any, error) {
	l, err := r.line()
	if err != nil {
		return nil, err
	}
	if l == "" {
		return nil, errors.New("resp: empty line")
	}
	body := l[1:]
	switch l[0] {
	case '+':
		return body, nil
	case '-':
		return Error(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n > maxBulk {
			return nil, fmt.Errorf("resp: bad bulk length %q", body)
		}
		if n < 0 {
			return nil, nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r.br, b); err != nil {
			return nil, err
		}
		return string(b[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n > maxBulk {
			return nil, fmt.Errorf("resp: bad array length %q", body)
		}
		if n < 0 {
			return nil, nil
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = r.read(); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	return nil, fmt.Errorf("resp: unknown reply type %q", l)
}
