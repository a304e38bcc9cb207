package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"imload/mux"
	"imload/server/auth"
)

func init() { subcommands = append(subcommands, newTokenCmd) }

func newTokenCmd() *cobra.Command {
	var (
		secretFile string
		tok        = auth.Token{TTL: time.Hour}
		rooms      []string
	)
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print a JSON Web Token for a server started with --auth jwt (local testing)",
		Long: `token prints an HS256 token signed with the secret in --secret-file, for a
server started with --auth jwt --jwt-hmac-secret-file of the same file: its
sub is --sub (the user name), it expires --ttl from now, and --rooms, if
given, lists the rooms (or prefixes ending in *) the user may join.

It is for local testing: a team's backend mints its users' tokens itself
(docs/protocol.md, "Authentication").`,
		Example: `  head -c 32 /dev/urandom | base64 > secret.txt
  imload serve --auth jwt --jwt-hmac-secret-file secret.txt &
  imload token --secret-file secret.txt --sub alice
  imload token --secret-file secret.txt --sub bob --ttl 10m --rooms lobby,team-*`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if secretFile == "" {
				return errors.New("--secret-file is required (the file given to imload serve --jwt-hmac-secret-file)")
			}
			if err := mux.CheckName(tok.Subject); err != nil {
				return fmt.Errorf("--sub: %w", err)
			}
			if tok.TTL <= 0 {
				return errors.New("--ttl must be positive")
			}
			if cmd.Flags().Changed("rooms") {
				tok.Rooms = rooms
				if tok.Rooms == nil {
					tok.Rooms = []string{}
				}
				for _, r := range tok.Rooms {
					if !auth.ValidRoomPattern(r) {
						return fmt.Errorf("--rooms: %q is neither a room name nor a prefix ending in *", r)
					}
				}
			}
			if tok.Color != "" && !auth.ValidColor(tok.Color) {
				return errors.New("--color must be #rrggbb")
			}
			if tok.Name != "" && !auth.ValidDisplayName(tok.Name) {
				return fmt.Errorf("--name must be 1-%d bytes of printable text", auth.MaxDisplayNameBytes)
			}
			secret, err := readSecretFile(secretFile)
			if err != nil {
				return fmt.Errorf("--secret-file: %w", err)
			}
			s, err := auth.SignHS256(secret, tok)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), s)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&secretFile, "secret-file", "", "file holding the HMAC secret (the server's --jwt-hmac-secret-file)")
	f.StringVar(&tok.Subject, "sub", "", "the user name (sub)")
	f.DurationVar(&tok.TTL, "ttl", tok.TTL, "how long the token lasts (exp)")
	f.StringSliceVar(&rooms, "rooms", nil, "rooms the user may join, names or prefixes ending in * (default: every room)")
	f.StringVar(&tok.Name, "name", "", "display name (name)")
	f.StringVar(&tok.Color, "color", "", "colour, #rrggbb (color)")
	f.StringVar(&tok.Audience, "aud", "", "audience (aud), for a server with --jwt-audience")
	f.StringVar(&tok.Issuer, "iss", "", "issuer (iss), for a server with --jwt-issuer")
	_ = cmd.MarkFlagRequired("sub")
	return cmd
}
