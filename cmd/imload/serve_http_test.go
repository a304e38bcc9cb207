package main

import "testing"

// checkServeFlags parses args and the environment env (IMLOAD_*) as
// imload serve does, and checks that each flag of want exists with its
// value.
func checkServeFlags(t *testing.T, env map[string]string, args []string, want map[string]string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	cmd := newServeCmd()
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		f := cmd.Flags().Lookup(name)
		if f == nil {
			t.Errorf("no --%s flag", name)
			continue
		}
		if got := f.Value.String(); got != w {
			t.Errorf("--%s = %q, want %q", name, got, w)
		}
	}
}

// The flags of the HTTP limits and the renamed rooms-per-session limit
// exist, with the documented defaults, and read IMLOAD_* like the others.
func TestServeHTTPAndRoomFlags(t *testing.T) {
	checkServeFlags(t, map[string]string{"IMLOAD_HTTP_IDLE_TIMEOUT": "5s"}, []string{"--max-rooms-per-session", "8"}, map[string]string{
		"http-idle-timeout":     "5s",
		"http-header-timeout":   "10s",
		"http-max-header-bytes": "16384",
		"max-rooms-per-session": "8",
	})
}

// The flags of the history of private messages exist, with the documented
// defaults, and read IMLOAD_* like the others.
func TestServeDMHistoryFlags(t *testing.T) {
	checkServeFlags(t, map[string]string{"IMLOAD_DM_HISTORY_AGE": "48h"}, []string{"--dm-history-max", "0"}, map[string]string{
		"dm-history-max":       "0",
		"dm-history-age":       "48h0m0s",
		"dm-max-conversations": "100000",
	})
}
