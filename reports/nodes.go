package reports

// The nodes of a run (Run.Nodes): the headline rows that say how many
// deliveries crossed nodes, and the per-node table of the text summary and
// the HTML report. All of it appears only when some run had several nodes:
// a one-node result reads as it did before nodes were reported.

import (
	"fmt"
	"strconv"
)

// anyMultiNode says whether some run of r had several nodes.
func anyMultiNode(r *Result) bool {
	return anyRun(r, func(run *Run) bool { return run.MultiNode() })
}

// nodeHeadlineRows are the headline rows about nodes: how many, and the
// deliveries of room messages and the DM copies that crossed nodes (rows to
// go under "delivered" and "DM copies delivered"), each with its share of
// the deliveries. Nil unless some run had several nodes; a run
// without nodes (an older result) shows "-".
func nodeHeadlineRows(r *Result) (nodes, cross, dmCross [][]string) {
	if !anyMultiNode(r) {
		return nil, nil, nil
	}
	measured := func(f func(run *Run) string) func(run *Run) string {
		return func(run *Run) string {
			if len(run.Nodes) == 0 {
				return "-"
			}
			return f(run)
		}
	}
	nodes = [][]string{perRun(r, "nodes", measured(func(run *Run) string { return fmtInt(int64(len(run.Nodes))) }))}
	cross = [][]string{perRun(r, "  of them cross-node (sender on another node)", measured(func(run *Run) string {
		return fmtShare(run.Delivery.CrossNode, run.Delivery.Delivered)
	}))}
	if hasDMDelivery(r) {
		dmCross = [][]string{perRun(r, "  of them cross-node", measured(func(run *Run) string {
			if run.DMDelivery == nil {
				return "-"
			}
			return fmtShare(run.DMDelivery.CrossNode, run.DMDelivery.Delivered)
		}))}
	}
	return nodes, cross, dmCross
}

// fmtShare formats n and its share of total: "1,234 (56.7%)".
func fmtShare(n, total int64) string {
	if total == 0 {
		return fmtInt(n)
	}
	return fmt.Sprintf("%s (%s%%)", fmtInt(n), strconv.FormatFloat(100*float64(n)/float64(total), 'f', 1, 64))
}

// nodeRows is the per-node table of a run with several nodes (nil
// otherwise): one row per node, its connections and sessions at peak, the
// messages sent through it, the deliveries to its sockets (and how many of
// them crossed nodes), the reconnects onto it (and how many came from
// another node), and its server's own connection count at its peak when the
// run polled every node's /stats.
func nodeRows(run *Run) [][]string {
	if !run.MultiNode() {
		return nil
	}
	stats := false
	for _, n := range run.Nodes {
		stats = stats || n.ServerStatsPeak != nil
	}
	head := []string{"node", "connections", "sessions", "sent", "delivered", "cross-node", "reconnects", "switched in"}
	if stats {
		head = append(head, "server conns")
	}
	rows := [][]string{head}
	for _, n := range run.Nodes {
		row := []string{n.Target, fmtInt(n.PhysicalConnectionsPeak), fmtInt(n.SessionsPeak),
			fmtInt(n.MessagesSent + n.DMsSent), fmtInt(n.Delivered), fmtInt(n.CrossNode),
			fmtInt(n.Reconnects), fmtInt(n.SwitchedIn)}
		if stats {
			cell := "-"
			if v, ok := n.ServerStatsPeak[StatPhysicalConnections].(float64); ok {
				cell = fmtInt(int64(v))
			}
			row = append(row, cell)
		}
		rows = append(rows, row)
	}
	return rows
}

// nodesNote explains the per-node table's columns.
const nodesNote = "connections and sessions at each node's peak; sent: room messages and DMs first written to a socket on the node; " +
	"delivered: room messages received by tabs on the node, cross-node: of them, sent through another node; " +
	"reconnects: links re-established onto the node, switched in: of them, from another node"
