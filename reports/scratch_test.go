package reports

import (
	"os"
	"testing"
)

func TestScratch(t *testing.T) {
	r, _ := makeResult(t, fixture{seed: 1, lost: 3})
	Text(os.Stdout, r)
}
