package main

import (
	"bytes"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"imload/reports"
)

// newReportHTMLCmd is `imload report html RESULT`.
func newReportHTMLCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "html RESULT",
		Short: "Render the HTML report of a result",
		Long: `Render the self-contained HTML report of a result: by default to
report.html next to the result file, or to the file given with -o ("-" for
standard output).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, path, err := loadResult(args[0])
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := reports.HTML(&buf, r); err != nil {
				return err
			}
			if out == "" {
				out = filepath.Join(filepath.Dir(path), reports.FileReportHTML)
			}
			if err := writeOutput(cmd, out, buf.Bytes()); err != nil {
				return err
			}
			if out != "-" {
				fmt.Fprintln(cmd.ErrOrStderr(), "wrote", out)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "output file (default: report.html next to RESULT; - for stdout)")
	return cmd
}
