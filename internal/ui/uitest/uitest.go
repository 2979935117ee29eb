// Package uitest drives the web console in a real headless Chromium for
// tests: it starts the browser (Debian's chromium, installed with
// hack/setup-browser.sh) with a fresh profile and no background network,
// runs chromedp actions with a bound on each step, writes screenshots to
// an artifact folder, runs the axe-core accessibility checker inside the
// page, and checks that every visible control is reachable with the Tab
// key. Without Chromium or axe-core a test is skipped with a message (and
// fails under CI=true); under -short it is skipped.
package uitest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/visionserve/visionserve/internal/testenv"
)

// AxeVersion is the axe-core release hack/setup-browser.sh caches; keep
// the two in step.
const AxeVersion = "4.11.0"

// Environment variables that point at the browser and at axe.min.js.
const (
	EnvChromium  = "VISIONSERVE_CHROMIUM"
	EnvAxe       = "VISIONSERVE_AXE"
	EnvArtifacts = "VISIONSERVE_ARTIFACTS"
)

// StepTimeout bounds one Do (a browser that hangs fails the test).
const StepTimeout = 90 * time.Second

// Browser is a headless Chromium with one tab, for one test.
type Browser struct {
	t   testing.TB
	ctx context.Context
	// Artifacts is the folder screenshots and downloads go to.
	Artifacts string
	axe       string
	shots     int

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

func chromium() string {
	if p := os.Getenv(EnvChromium); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func axePath() string {
	if p := os.Getenv(EnvAxe); p != "" {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(cache, "visionserve", "axe-core", AxeVersion, "axe.min.js")
}

// artifacts returns the test's artifact folder: under $VISIONSERVE_ARTIFACTS
// (kept after the test) when set, else a temporary one.
func artifacts(t testing.TB) string {
	root := os.Getenv(EnvArtifacts)
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Start launches Chromium for the test; it is stopped, and its profile
// removed, when the test ends.
func Start(t testing.TB) *Browser {
	t.Helper()
	if testing.Short() {
		t.Skip("drives Chromium against a whole server: not in the -short (race) run")
	}
	exe := chromium()
	if exe == "" {
		testenv.Missing(t, "no Chromium for the console's browser tests: run eval \"$(hack/setup-browser.sh)\" (or set "+EnvChromium+")")
	}
	axe := axePath()
	if _, err := os.Stat(axe); err != nil {
		testenv.Missing(t, "no axe-core for the accessibility check: run eval \"$(hack/setup-browser.sh)\" (or set "+EnvAxe+"): "+err.Error())
	}
	profile, err := os.MkdirTemp("", "visionserve-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	alloc, stopAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true), // the console talks to 127.0.0.1 only
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 1000),
	)
	ctx, stopTab := chromedp.NewContext(alloc)
	b := &Browser{t: t, ctx: ctx, Artifacts: artifacts(t), axe: axe}
	t.Cleanup(func() {
		stopTab()
		stopAlloc()
		// Chromium's helpers may still write for a moment after it stops.
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	t.Logf("browser %s, artifacts in %s", exe, b.Artifacts)
	return b
}

// Do runs actions within StepTimeout; on failure it saves a screenshot
// and fails the test, naming what it was doing.
func (b *Browser) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, StepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.Screenshot("failed")
		b.t.Fatalf("%s: %v\nbrowser console:\n%s", what, err, b.Console())
	}
}

// Eval evaluates a JavaScript expression in the page (awaiting a promise)
// and decodes its value into T.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, StepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.Screenshot("failed")
		b.t.Fatalf("evaluating %.80s: %v", expr, err)
	}
	return v
}

// WaitFor polls a JavaScript condition until it is true, within
// StepTimeout.
func (b *Browser) WaitFor(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(StepTimeout)
	for !Eval[bool](b, "Boolean("+cond+")") {
		if time.Now().After(deadline) {
			b.Screenshot("failed")
			b.t.Fatalf("waiting for %s (%s): not within %v\nbrowser console:\n%s", what, cond, StepTimeout, b.Console())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Screenshot saves the viewport as <n>-<name>.png in Artifacts.
func (b *Browser) Screenshot(name string) string {
	ctx, cancel := context.WithTimeout(b.ctx, StepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	b.shots++
	p := filepath.Join(b.Artifacts, fmt.Sprintf("%02d-%s.png", b.shots, name))
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
	return p
}

// Console returns what the page wrote to its console so far.
func (b *Browser) Console() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var lines []string
	for _, m := range b.console {
		lines = append(lines, "  "+m.String())
	}
	return strings.Join(lines, "\n")
}

// Problems returns the page's exceptions and errors, leaving out the
// browser's note on each refused request (the tests make some on
// purpose; the page reports them itself).
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.console {
		if (m.Type == chromedp.ConsoleError || m.IsException()) && !strings.Contains(m.Text, "Failed to load resource") {
			out = append(out, m.String())
		}
	}
	return out
}

// FirstPaint returns the page's first contentful paint in milliseconds
// since navigation (0 when the browser reports none).
func (b *Browser) FirstPaint() float64 {
	return Eval[float64](b, `(performance.getEntriesByName('first-contentful-paint')[0] || {startTime: 0}).startTime`)
}

// Violation is one axe-core rule the page breaks.
type Violation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// Axe runs axe-core in the page (injected through the DevTools protocol,
// which the page's Content Security Policy does not govern) and returns
// the violations; it fails the test on any serious or critical one.
func (b *Browser) Axe(when string) []Violation {
	b.t.Helper()
	src, err := os.ReadFile(b.axe)
	if err != nil {
		b.t.Fatal(err)
	}
	if !Eval[bool](b, "typeof window.axe === 'object'") {
		Eval[bool](b, string(src)+"\n;true")
	}
	raw := Eval[string](b, `axe.run(document, {resultTypes: ['violations']}).then(r => JSON.stringify({passed: r.passes.length,
		violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))}))`)
	var res struct {
		Passed     int         `json:"passed"`
		Violations []Violation `json:"violations"`
	}
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		b.t.Fatal(err)
	}
	vs := res.Violations
	b.t.Logf("axe-core %s (%s): %d rules passed, %d violated", AxeVersion, when, res.Passed, len(vs))
	bad := 0
	for _, v := range vs {
		b.t.Logf("axe (%s): %s %s: %s %v", when, v.Impact, v.ID, v.Help, v.Nodes)
		if v.Impact == "serious" || v.Impact == "critical" {
			bad++
		}
	}
	if bad > 0 {
		b.Screenshot("axe-" + when)
		b.t.Errorf("axe (%s): %d serious or critical violations", when, bad)
	}
	return vs
}

// KeyboardReach presses Tab through the page and fails the test for each
// visible, enabled control (links, buttons, inputs, selects, textareas and
// anything with tabindex >= 0) that focus never reached. Controls taken
// out of the tab order on purpose (tabindex=-1, as the unselected tabs of
// a tablist, which arrow keys reach) are not expected.
func (b *Browser) KeyboardReach(when string) {
	b.t.Helper()
	want := Eval[[]string](b, `(() => {
		const sel = 'a[href], button, input, select, textarea, [tabindex]';
		let n = 0;
		return [...document.querySelectorAll(sel)].filter(el =>
			!el.disabled && el.tabIndex >= 0 && el.getClientRects().length > 0 &&
			getComputedStyle(el).visibility !== 'hidden' && !el.closest('[hidden], [inert]')
		).map(el => { if (!el.dataset.kbd) el.dataset.kbd = 'k' + (n++) + '-' + (el.id || el.textContent.trim().slice(0, 24)); return el.dataset.kbd; });
	})()`)
	Eval[bool](b, `(document.activeElement && document.activeElement.blur(), window.scrollTo(0, 0), true)`)
	reached := map[string]bool{}
	for range len(want) + 10 {
		b.Do("pressing Tab", chromedp.KeyEvent(kb.Tab))
		if id := Eval[string](b, `(document.activeElement && document.activeElement.dataset.kbd) || ''`); id != "" {
			reached[id] = true
		}
	}
	var missed []string
	for _, id := range want {
		if !reached[id] {
			missed = append(missed, id)
		}
	}
	if len(missed) > 0 {
		b.Screenshot("keyboard-" + when)
		b.t.Errorf("keyboard (%s): %d of %d controls never reached with Tab: %v", when, len(missed), len(want), missed)
	} else {
		b.t.Logf("keyboard (%s): all %d visible controls reached with Tab", when, len(want))
	}
}

// DownloadsTo makes the browser save downloads in dir under their own
// names.
func (b *Browser) DownloadsTo(dir string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, StepTimeout)
	defer cancel()
	events := true
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir, EventsEnabled: &events,
	}); err != nil {
		b.t.Fatal(err)
	}
}

// WaitFile waits until path exists (a finished download: Chromium writes
// a .crdownload file and renames it when done).
func (b *Browser) WaitFile(path string) {
	b.t.Helper()
	deadline := time.Now().Add(StepTimeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("no %s within %v", path, StepTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
