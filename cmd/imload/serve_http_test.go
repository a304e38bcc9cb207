package main

import "testing"

// The flags of the HTTP limits and the renamed rooms-per-session limit
// exist, with the documented defaults, and read IMLOAD_* like the others.
func TestServeHTTPAndRoomFlags(t *testing.T) {
	t.Setenv("IMLOAD_HTTP_IDLE_TIMEOUT", "5s")
	cmd := newServeCmd()
	if err := cmd.ParseFlags([]string{"--max-rooms-per-session", "8"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"http-idle-timeout":     "5s",
		"http-header-timeout":   "10s",
		"http-max-header-bytes": "16384",
		"max-rooms-per-session": "8",
	} {
		f := cmd.Flags().Lookup(name)
		if f == nil {
			t.Errorf("no --%s flag", name)
			continue
		}
		if got := f.Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", name, got, want)
		}
	}
}

// The flags of the history of private messages exist, with the documented
// defaults, and read IMLOAD_* like the others.
func TestServeDMHistoryFlags(t *testing.T) {
	t.Setenv("IMLOAD_DM_HISTORY_AGE", "48h")
	cmd := newServeCmd()
	if err := cmd.ParseFlags([]string{"--dm-history-max", "0"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"dm-history-max":       "0",
		"dm-history-age":       "48h0m0s",
		"dm-max-conversations": "100000",
	} {
		f := cmd.Flags().Lookup(name)
		if f == nil {
			t.Errorf("no --%s flag", name)
			continue
		}
		if got := f.Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", name, got, want)
		}
	}
}
