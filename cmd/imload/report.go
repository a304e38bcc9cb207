package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"imload/reports"
)

func init() { subcommands = append(subcommands, newReportCmd) }

// newReportCmd is `imload report`, the parent of the commands that render,
// compare and merge run results.
func newReportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Render, compare and merge the results of runs",
		Long: `Render, compare and merge the result.json files written by imload run.

A RESULT argument is a result.json file or a directory that holds one (the
output directory of imload run).

  imload report show RESULT           print the text summary
  imload report html RESULT           (re)render report.html next to the result
  imload report compare A B           compare two results side by side
  imload report merge A B C -o DIR    merge results taken on several load machines`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newReportShowCmd(), newReportHTMLCmd(), newReportCompareCmd(), newReportMergeCmd())
	return cmd
}

// resultPath resolves a RESULT argument: a directory means its result.json.
func resultPath(arg string) string {
	if fi, err := os.Stat(arg); err == nil && fi.IsDir() {
		return filepath.Join(arg, reports.FileResult)
	}
	return arg
}

// loadResult loads a RESULT argument, returning the file it read.
func loadResult(arg string) (*reports.Result, string, error) {
	path := resultPath(arg)
	r, err := reports.Load(path)
	if err != nil {
		return nil, path, err
	}
	return r, path, nil
}

// resultLabel names a result file in comparisons: its directory's name for a
// result.json, else the file name without extension.
func resultLabel(path string) string {
	base := filepath.Base(path)
	if base == reports.FileResult {
		if dir := filepath.Base(filepath.Dir(path)); dir != "." && dir != string(filepath.Separator) {
			return dir
		}
		return base
	}
	return base[:len(base)-len(filepath.Ext(base))]
}

// writeOutput writes data to path, or to the command's output for "-".
func writeOutput(cmd *cobra.Command, path string, data []byte) error {
	if path == "-" {
		_, err := cmd.OutOrStdout().Write(data)
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
