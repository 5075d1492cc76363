package prometheus

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDashboard parses the Grafana dashboard and checks that every query
// names metrics the Collector exports and variables the dashboard defines.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/ipvs.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title      string
		UID        string
		Templating struct{ List []struct{ Name string } }
		Panels     []struct {
			ID         int
			Title      string
			Type       string
			Datasource struct{ UID string }
			Targets    []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/ipvs.json is not valid JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard without title, uid or panels: %q %q %d", d.Title, d.UID, len(d.Panels))
	}
	known := map[string]bool{}
	for _, f := range allFamilies {
		known[f.name] = true
	}
	vars := map[string]bool{"__rate_interval": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	metric := regexp.MustCompile(`\b(?:node_)?ipvs_[a-z_]+\b`)
	variable := regexp.MustCompile(`\$\{?(\w+)`)
	ids := map[int]bool{}
	used := map[string]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %q, want the ${datasource} variable", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			names := metric.FindAllString(q.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no ipvs metric", p.Title, q.Expr)
			}
			for _, n := range names {
				used[n] = true
				if !known[n] {
					t.Errorf("panel %q: query %q: the Collector exports no %s", p.Title, q.Expr, n)
				}
			}
			for _, m := range variable.FindAllStringSubmatch(q.Expr, -1) {
				if !vars[m[1]] {
					t.Errorf("panel %q: query %q: no variable %s", p.Title, q.Expr, m[1])
				}
			}
		}
	}
	for _, want := range []string{"ipvs_service_connections_total", "ipvs_destination_connections_active", "ipvs_destination_weight", "ipvs_sync_daemon_running"} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
	if !strings.HasSuffix(string(b), "\n") {
		t.Errorf("grafana/ipvs.json does not end in a newline")
	}
}
