// Package deploy holds the container image and Kubernetes examples' tests: the manifests are
// well-formed and self-consistent, their configuration and policies load, the gateway serves with
// them, and the image builds the same static, stamped binary as the Makefile's release.
package deploy

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

type obj = map[string]any

// get walks a path of map keys; nil when any step is missing.
func get(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(obj)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any, path ...string) string { s, _ := get(v, path...).(string); return s }

func list(v any, path ...string) []any { l, _ := get(v, path...).([]any); return l }

// manifests decodes every document of a multi-document YAML file.
func manifests(t *testing.T, file string) []obj {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []obj
	for {
		var d obj
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

// The API versions of the kinds the examples use, as the Kubernetes API serves them.
var apiVersions = map[string]string{
	"ConfigMap": "v1", "Secret": "v1", "Service": "v1", "PersistentVolumeClaim": "v1",
	"Deployment": "apps/v1", "StatefulSet": "apps/v1",
}

func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) < 2 {
		t.Fatalf("manifests: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { checkManifest(t, f, manifests(t, f)) })
	}
}

func checkManifest(t *testing.T, file string, docs []obj) {
	byKind := map[string]map[string]obj{}
	for i, d := range docs {
		kind, name := str(d, "kind"), str(d, "metadata", "name")
		want, ok := apiVersions[kind]
		switch {
		case !ok:
			t.Errorf("%s doc %d: unexpected kind %q", file, i, kind)
		case str(d, "apiVersion") != want:
			t.Errorf("%s %s: apiVersion %q, want %q", file, kind, str(d, "apiVersion"), want)
		case !regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`).MatchString(name):
			t.Errorf("%s %s: metadata.name %q is not a DNS label", file, kind, name)
		}
		if byKind[kind] == nil {
			byKind[kind] = map[string]obj{}
		}
		if byKind[kind][name] != nil {
			t.Errorf("%s: %s %q twice", file, kind, name)
		}
		byKind[kind][name] = d
	}
	workloads := 0
	for _, kind := range []string{"Deployment", "StatefulSet"} {
		for name, w := range byKind[kind] {
			workloads++
			checkWorkload(t, file+" "+kind+"/"+name, w, byKind)
		}
	}
	if workloads != 1 {
		t.Errorf("%s: %d workloads, want 1", file, workloads)
	}
	if len(byKind["Service"]) == 0 {
		t.Errorf("%s: no Service", file)
	}
	cm := byKind["ConfigMap"]["portcullis-config"]
	if cm == nil {
		t.Fatalf("%s: no ConfigMap portcullis-config", file)
	}
	if _, err := config.Parse("portcullis.yaml", []byte(str(cm, "data", "portcullis.yaml"))); err != nil {
		t.Errorf("%s: the configuration does not load: %v", file, err)
	}
	pols := byKind["ConfigMap"]["portcullis-policies"]
	if len(get(pols, "data").(obj)) == 0 {
		t.Fatalf("%s: no policies", file)
	}
	for name, text := range get(pols, "data").(obj) {
		f, err := policy.Parse(name, []byte(text.(string)))
		if err == nil {
			_, err = policy.Compile(f)
		}
		if err != nil {
			t.Errorf("%s: policy %s: %v", file, name, err)
		}
	}
}

func checkWorkload(t *testing.T, what string, w obj, byKind map[string]map[string]obj) {
	labels, _ := get(w, "spec", "template", "metadata", "labels").(obj)
	sel, _ := get(w, "spec", "selector", "matchLabels").(obj)
	if len(sel) == 0 || !subset(sel, labels) {
		t.Errorf("%s: selector %v does not select the pod labels %v", what, sel, labels)
	}
	pod := get(w, "spec", "template", "spec")
	if get(pod, "securityContext", "runAsNonRoot") != true {
		t.Errorf("%s: the pod does not require a non-root user", what)
	}
	volumes := map[string]obj{}
	for _, v := range list(pod, "volumes") {
		volumes[str(v, "name")] = v.(obj)
	}
	for _, v := range list(w, "spec", "volumeClaimTemplates") {
		volumes[str(v, "metadata", "name")] = obj{"claimTemplate": true}
	}
	for name, v := range volumes {
		if ref := str(v, "configMap", "name"); ref != "" && byKind["ConfigMap"][ref] == nil {
			t.Errorf("%s: volume %s names ConfigMap %q, not in the file", what, name, ref)
		}
		if ref := str(v, "persistentVolumeClaim", "claimName"); ref != "" && byKind["PersistentVolumeClaim"][ref] == nil {
			t.Errorf("%s: volume %s names PersistentVolumeClaim %q, not in the file", what, name, ref)
		}
	}
	if get(w, "kind") == "StatefulSet" {
		svc := byKind["Service"][str(w, "spec", "serviceName")]
		if svc == nil || str(svc, "spec", "clusterIP") != "None" {
			t.Errorf("%s: serviceName %q is not a headless Service in the file", what, str(w, "spec", "serviceName"))
		}
	}
	var gateway obj
	ports := map[string]bool{}
	containers := append(list(pod, "initContainers"), list(pod, "containers")...)
	for _, c := range containers {
		cname := str(c, "name")
		if cname == "" || str(c, "image") == "" {
			t.Errorf("%s: a container without a name or image", what)
		}
		if get(c, "securityContext", "readOnlyRootFilesystem") != true || get(c, "securityContext", "allowPrivilegeEscalation") != false {
			t.Errorf("%s: container %s: want readOnlyRootFilesystem true and allowPrivilegeEscalation false", what, cname)
		}
		for _, m := range list(c, "volumeMounts") {
			if volumes[str(m, "name")] == nil {
				t.Errorf("%s: container %s mounts %q, which is not a volume", what, cname, str(m, "name"))
			}
		}
		if cname == "portcullis" {
			gateway = c.(obj)
		}
	}
	if gateway == nil {
		t.Fatalf("%s: no portcullis container", what)
	}
	for _, p := range list(gateway, "ports") {
		ports[str(p, "name")] = true
	}
	if str(gateway, "readinessProbe", "httpGet", "path") != "/readyz" || !ports[str(gateway, "readinessProbe", "httpGet", "port")] {
		t.Errorf("%s: the readiness probe is not /readyz on a named container port", what)
	}
	if str(gateway, "livenessProbe", "httpGet", "path") != "/healthz" {
		t.Errorf("%s: the liveness probe is not /healthz", what)
	}
	args := list(gateway, "args")
	if len(args) < 3 || args[0] != "serve" || args[1] != "--config" {
		t.Errorf("%s: args %v, want serve --config FILE", what, args)
	} else if !mountedUnder(gateway, args[2].(string)) {
		t.Errorf("%s: the configuration %s is not on a mounted volume", what, args[2])
	}
	for name, svc := range byKind["Service"] {
		sel, _ := get(svc, "spec", "selector").(obj)
		if !subset(sel, labels) {
			t.Errorf("%s: Service %s selects %v, not the pods", what, name, sel)
		}
		for _, p := range list(svc, "spec", "ports") {
			if tp, ok := get(p, "targetPort").(string); ok && !ports[tp] {
				t.Errorf("%s: Service %s targets port %q, which the container does not name", what, name, tp)
			}
		}
	}
}

func subset(a, b obj) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) > 0
}

func mountedUnder(c obj, path string) bool {
	for _, m := range list(c, "volumeMounts") {
		if strings.HasPrefix(path, str(m, "mountPath")+"/") {
			return true
		}
	}
	return false
}

// makeN prints what make would run.
func makeN(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-s", "-n", "-C", ".."}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n %v: %v\n%s", args, err, out)
	}
	return string(out)
}

var stamp = []string{"VERSION=v0.0.0-test", "COMMIT=0123456789abcdef", "DATE=2026-01-02T03:04:05Z"}

// The image definition: multi-stage, the Makefile's static build, a distroless non-root runtime,
// the data directory a volume, a health check on /readyz — and the build command it runs is the
// one `make release` runs.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(data), " ")
	var froms []string
	var run, user, volume, health, entry string
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		rest := strings.TrimSpace(strings.TrimPrefix(l, f[0]))
		switch f[0] {
		case "FROM":
			froms = append(froms, rest)
		case "RUN":
			if strings.Contains(rest, "make ") {
				run = rest
			}
		case "USER":
			user = rest
		case "VOLUME":
			volume = rest
		case "HEALTHCHECK":
			health = rest
		case "ENTRYPOINT":
			entry = rest
		}
	}
	if len(froms) < 2 || !strings.HasPrefix(froms[len(froms)-1], "gcr.io/distroless/static") {
		t.Errorf("FROM %v: want a build stage and a distroless static runtime", froms)
	}
	if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		t.Errorf("USER %q: want a non-root user", user)
	}
	if !strings.Contains(volume, "/var/lib/portcullis") {
		t.Errorf("VOLUME %q: want the data directory", volume)
	}
	if !strings.Contains(health, "portcullis-probe") || !strings.Contains(health, "/readyz") {
		t.Errorf("HEALTHCHECK %q: want the probe on /readyz", health)
	}
	if !strings.Contains(entry, "/usr/local/bin/portcullis") {
		t.Errorf("ENTRYPOINT %q", entry)
	}
	m := regexp.MustCompile(`make (static) (.*?)(&&|$)`).FindStringSubmatch(run)
	if m == nil {
		t.Fatalf("the image's RUN does not build with make static: %q", run)
	}
	// What the image runs, with the build arguments filled in, against what the release runs.
	args := []string{"static"}
	for _, a := range strings.Fields(m[2]) {
		k, _, _ := strings.Cut(a, "=")
		switch k {
		case "VERSION", "COMMIT", "DATE":
		default:
			args = append(args, a)
		}
	}
	image := buildCommands(makeN(t, append(args, stamp...)...))
	release := buildCommands(makeN(t, append([]string{"release", "PLATFORMS=linux/amd64"}, stamp...)...))
	if len(image) == 0 || len(release) != 1 {
		t.Fatalf("build commands: image %q, release %q", image, release)
	}
	if image[0] != release[0] {
		t.Errorf("the image builds with\n  %s\nthe release with\n  %s", image[0], release[0])
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "internal/version.Version=v0.0.0-test", "internal/version.Commit=0123456789abcdef"} {
		if !strings.Contains(image[0], want) {
			t.Errorf("the build command lacks %s: %s", want, image[0])
		}
	}
}

// buildCommands returns the go build commands of make -n output for ./cmd/portcullis, without
// their -o target and GOOS/GOARCH.
func buildCommands(out string) []string {
	re := regexp.MustCompile(`(CGO_ENABLED=0 \S+ build .*?) -o \S+ \./cmd/portcullis(["\s]|$)`)
	var cmds []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "GOOS=") && !strings.Contains(l, "echo") {
			continue // the release loop's command, also echoed with its values filled in
		}
		if m := re.FindStringSubmatch(l); m != nil {
			cmds = append(cmds, m[1])
		}
	}
	return cmds
}

// The static build really is static and stamped; the probe it builds beside it passes a gateway
// started with the single-replica manifest's configuration and policies.
func TestStaticBuildServesTheManifestConfiguration(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin, probe := filepath.Join(dir, "portcullis"), filepath.Join(dir, "portcullis-probe")
	cmd := exec.Command("make", append([]string{"-s", "-C", "..", "static", "OUT=" + bin, "PROBE_OUT=" + probe}, stamp...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make static: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary names a dynamic loader: not static")
		}
	}
	f.Close()
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings: CGO_ENABLED=%q -trimpath=%q", settings["CGO_ENABLED"], settings["-trimpath"])
	}
	// -trimpath keeps -ldflags out of the build info: the stamp is in the binary's data.
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v0.0.0-test", "0123456789abcdef", "2026-01-02T03:04:05Z"} {
		if !bytes.Contains(raw, []byte(v)) {
			t.Errorf("the binary does not carry the stamp %q", v)
		}
	}

	// The manifest's files, with its absolute paths moved into a temporary root.
	var cfgText string
	var policies obj
	for _, d := range manifests(t, "kubernetes/single.yaml") {
		switch str(d, "metadata", "name") {
		case "portcullis-config":
			cfgText = str(d, "data", "portcullis.yaml")
		case "portcullis-policies":
			policies = get(d, "data").(obj)
		}
	}
	root := t.TempDir()
	cfgText = strings.NewReplacer("/var/lib/portcullis", filepath.Join(root, "data"), "/etc/portcullis", filepath.Join(root, "etc")).Replace(cfgText)
	for _, d := range []string{"data", "etc/policies", "etc/config"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range policies {
		if err := os.WriteFile(filepath.Join(root, "etc/policies", name), []byte(text.(string)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(root, "etc/config/portcullis.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	serve := exec.CommandContext(ctx, bin, "serve", "--config", cfgPath, "--listen", addr)
	var out bytes.Buffer
	serve.Stdout, serve.Stderr = &out, &out
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = serve.Process.Signal(os.Interrupt)
			_ = serve.Wait()
		}
	}
	defer stop()
	var probeOut []byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		probeOut, err = exec.Command(probe, "-timeout", "2s", "http://"+addr+"/readyz").CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("the probe never passed: %v %s\nserve:\n%s", err, probeOut, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(root, "data", "ledger.db")); err != nil {
		t.Errorf("the gateway did not keep its ledger in the manifest's data directory: %v", err)
	}
	stop() // out is the process's until it has exited
	if bytes.Contains(out.Bytes(), []byte("WARN")) {
		t.Errorf("the manifest's configuration warns:\n%s", out.String())
	}
}
