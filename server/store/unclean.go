package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// A relaxed store acknowledges messages before they are committed, so a
// crash may lose the newest ones after clients saw them. Their offsets
// would then be given to other messages under the same epoch, and a client
// that saw the lost one would take the new one for a duplicate. So a
// relaxed store marks itself open (meta "unclean" = "1") and clean at
// Close; found open at the next start, every room gets a new epoch: clients
// that resume are told to reset, and within an epoch an offset never names
// two messages. A durable store without fsync (NoSync) loses nothing to a
// crash of the process, only to one of the machine: it marks itself open
// with the machine's boot id ("boot:<id>"), and renews the epochs only if
// the machine restarted since. A durable store that fsyncs keeps its
// epochs through any crash and marks itself clean at open.
//
// The mark is written with synchronous=FULL whatever the mode: a mark lost
// to a power loss would hide the very crash it is there to tell about.

const metaUnclean = "unclean"

// markOpen renews every room's epoch if the last store may have lost
// messages that clients saw, then records what this one may lose.
func markOpen(ctx context.Context, conn *sql.Conn, opts Options) (err error) {
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = FULL"); err != nil {
		return fmt.Errorf("fsync the clean-stop mark: %w", err)
	}
	if !opts.fsync() {
		defer func() {
			if _, serr := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous = NORMAL"); serr != nil && err == nil {
				err = fmt.Errorf("synchronous=NORMAL: %w", serr)
			}
		}()
	}
	boot := opts.bootID()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	var v string
	switch err := conn.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?1`, metaUnclean).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("read the clean-stop mark: %w", err)
	}
	lastBoot, withBoot := strings.CutPrefix(v, "boot:")
	if why := ""; v == "1" || (withBoot && (boot == "" || lastBoot != boot)) {
		why = "the last relaxed run stopped without closing its store"
		if withBoot {
			why = "the machine restarted while the store was open without fsync"
		}
		n, err := renewEpochs(ctx, conn)
		if err != nil {
			return err
		}
		opts.Logger.Warn("store: "+why+": every room and conversation has a new epoch (clients reset)", "logs", n)
	}
	mark := "0"
	switch {
	case !opts.Durable:
		mark = "1"
	case opts.NoSync:
		mark = "boot:" + boot
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?1, ?2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, metaUnclean, mark); err != nil {
		return fmt.Errorf("write the clean-stop mark: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// markClosed records a clean stop: everything queued was committed.
func markClosed(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `UPDATE meta SET value = '0' WHERE key = ?1`, metaUnclean); err != nil {
		return fmt.Errorf("write the clean-stop mark: %w", err)
	}
	return nil
}

// renewEpochs gives every stored room and conversation a new random
// epoch, inside the caller's transaction, and returns how many it changed.
func renewEpochs(ctx context.Context, conn *sql.Conn) (int, error) {
	n := 0
	for k := range numKinds {
		names, err := logNames(ctx, conn, k)
		if err != nil {
			return n, err
		}
		update := tablesOf[k].sql(`UPDATE {O} SET epoch = ?2 WHERE name = ?1`)
		for _, name := range names {
			if _, err := conn.ExecContext(ctx, update, name, NewEpoch()); err != nil {
				return n, fmt.Errorf("renew the epoch of %s %q: %w", tablesOf[k].what, name, err)
			}
		}
		n += len(names)
	}
	return n, nil
}

// readBootID returns the machine's boot id, or "" when it is unknown (then
// any unclean stop of a NoSync store counts as a machine's).
func readBootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// NewEpoch returns a new random room epoch: 12 hex digits.
func NewEpoch() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported systems
	return hex.EncodeToString(b[:])
}
