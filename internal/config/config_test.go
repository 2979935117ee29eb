package config

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadFull(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Addr != "127.0.0.1:9000" || c.Server.Workers != 3 || c.Server.RequestTimeout != 5*time.Second || c.Server.MaxConnections != 200 ||
		c.Server.BodyMemory != 256<<20 || c.Server.MinUploadRate != 4<<10 {
		t.Errorf("server = %+v", c.Server)
	}
	if c.Limits.MaxBytes != 8<<20 || c.Limits.MaxPages != 4 {
		t.Errorf("limits = %+v", c.Limits)
	}
	if len(c.Models) != 4 || c.Models[1].Languages != "deu" {
		t.Errorf("models = %+v", c.Models)
	}
	if c.Server.GRPCAddr != "127.0.0.1:9001" || c.Limits.MaxTensorElements != 1e6 || c.ONNX.Library != "/opt/onnxruntime/libonnxruntime.so.1" {
		t.Errorf("grpc_addr %q, max_tensor_elements %d, onnx %+v", c.Server.GRPCAddr, c.Limits.MaxTensorElements, c.ONNX)
	}
	det := c.Models[3]
	batching, _ := det.Runtime["batching"].(map[string]any)
	if det.Engine != "onnx" || det.Dir != "/srv/models/det" || det.Runtime["file"] != "det.onnx" || batching["max_queue_delay"] != "2ms" {
		t.Errorf("onnx model = %+v", det)
	}
	if c.OCR.Review.Accept != 0.9 || c.OCR.Dewarp != "off" || c.Log.Format != "json" {
		t.Errorf("ocr = %+v, log = %+v", c.OCR, c.Log)
	}
	if c.Server.AdminAddr != "127.0.0.1:9100" || c.TLS.Runtime().ClientAuth != "verify_if_given" || len(c.Auth.APIKeys) != 1 ||
		c.Auth.JWT.Leeway != 45*time.Second || c.RateLimits.Tenants["acme"].Concurrency != 32 {
		t.Errorf("server %+v tls %+v auth %+v rate limits %+v", c.Server, c.TLS, c.Auth, c.RateLimits)
	}
	if j := c.Jobs.Runtime(); j.MaxBytes != 64<<20 || j.PDF.MemoryLimit != 512<<20 || !j.Webhook.AllowPrivateNetworks || j.Retention != time.Hour ||
		j.MinUploadRate != 64<<10 || j.UploadGrace != 5*time.Second || j.Tenant.MaxQueued != 3 || j.Tenant.MaxPendingBytes != 512<<20 ||
		j.Tenant.MaxConcurrentUploads != 1 || j.Lease != 10*time.Second || j.PollInterval != 500*time.Millisecond ||
		j.Webhook.Concurrency != 4 || j.Webhook.PerDestination != 1 || j.KeepInputs || j.MaxKeptBytes != 768<<20 || j.Tenant.MaxKeptBytes != 256<<20 {
		t.Errorf("jobs %+v", j)
	}
	if c.Tracing.SampleRatio != 0.25 || c.Tracing.ServiceName != "ocr-prod" {
		t.Errorf("tracing %+v", c.Tracing)
	}
}

// The memory for request bodies defaults to 16 bodies of max_bytes; one
// principal may hold a quarter, never less than the largest body.
func TestBodyBudget(t *testing.T) {
	for _, tc := range []struct {
		memory, maxBytes   ByteSize
		wantTotal, wantOne int64
	}{
		{0, 32 << 20, 512 << 20, 128 << 20},
		{1 << 30, 32 << 20, 1 << 30, 256 << 20},
		{100 << 20, 32 << 20, 100 << 20, 64<<20 + 64<<10}, // a quarter is less than two images
		{0, 1 << 10, 2<<10 + 64<<10, 2<<10 + 64<<10},      // tiny images: the envelope dominates
	} {
		c := Default()
		c.Server.BodyMemory, c.Limits.MaxBytes = tc.memory, tc.maxBytes
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if total, one := c.BodyBudget(); total != tc.wantTotal || one != tc.wantOne {
			t.Errorf("body_memory %d, max_bytes %d: %d, %d; want %d, %d", tc.memory, tc.maxBytes, total, one, tc.wantTotal, tc.wantOne)
		}
	}
}

func TestLoadPartialKeepsDefaults(t *testing.T) {
	c, err := Load("testdata/partial.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if c.Server.Workers != 1 || c.Server.Queue != d.Server.Queue || c.Limits != d.Limits || len(c.Models) != 1 || !c.Jobs.KeepInputs {
		t.Errorf("partial = %+v", c)
	}
}

func TestLoadRejects(t *testing.T) {
	for file, wants := range map[string][]string{
		"testdata/bad-unknown-key.yaml": {"max_byte"},
		"testdata/bad-values.yaml": {
			"server.workers", "server.request_timeout", "server.max_connections", "server.body_memory", "verify", `engine "paddle"`,
			`name "a" is used twice`, "languages is empty", `log.level "loud"`,
			"models[2].dir is empty", "models[3]: dir and runtime are for ppocr and onnx", "max_tensor_elements",
			"tls: cert_file and key_file", "api_keys[0] (plain).hash", "rate_limits: default", "jobs: max_items", "tracing: sample_ratio",
			`ocr.dewarp "always"`,
		},
	} {
		_, err := Load(file)
		if err == nil {
			t.Errorf("%s: accepted", file)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error does not mention %q:\n%v", file, w, err)
			}
		}
	}
	if _, err := Parse(nil); err != nil {
		t.Errorf("empty file: %v", err)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"1024": 1024, "32MiB": 32 << 20, "1.5KiB": 1536, "2MB": 2e6, "7B": 7} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "lots", "1XB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", bad)
		}
	}
	if s := ByteSize(32 << 20).String(); s != "32MiB" {
		t.Errorf("String = %s", s)
	}
}

func TestLoadRepository(t *testing.T) {
	d := Default()
	if d.Repository.Dir != "" || d.DefaultModelName() != "ocr-eng" || d.Repository.StickyHeader != "X-Routing-Key" || d.Repository.Policy.Latest != 1 ||
		d.Repository.Check != (Check{Timeout: 2 * time.Minute, MemoryLimit: 4 << 30}) {
		t.Errorf("defaults %+v", d.Repository)
	}
	c, err := Load("testdata/repository.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := c.Repository
	if r.Dir != "/var/lib/visionserve/models" || c.DefaultModelName() != "ocr-deu" || r.RescanInterval != 10*time.Second || r.Watch ||
		r.StickyHeader != "X-Tenant" || r.MaxParallelLoads != 1 || len(r.Trust.Keys) != 2 || len(r.Trust.CACertificates) != 1 ||
		!r.Trust.AllowUnsigned || r.Policy.Latest != 2 || r.Policies["ocr-eng"].Versions[0] != 3 ||
		r.Check != (Check{Timeout: 30 * time.Second, MemoryLimit: 2 << 30}) || r.EffectiveStateDir() != "/var/lib/visionserve/state" {
		t.Errorf("repository %+v", r)
	}
	if i := r.Import; i.Dir != "/var/lib/visionserve/incoming" || i.SigningKey == "" || len(i.TrustedKeys) != 1 || i.ScanInterval != 2*time.Second {
		t.Errorf("repository.import %+v", i)
	}
	if r.StateDir = ""; r.EffectiveStateDir() != "/var/lib/visionserve/models/.visionserve" {
		t.Errorf("default state dir %q", r.EffectiveStateDir())
	}
	_, err = Load("testdata/bad-repository.yaml")
	for _, w := range []string{"default_model", "rescan_interval", "sticky_header", "max_parallel_loads", "repository.policy:", "policies.ocr-eng",
		"repository.import.signing_key", "check.timeout", "check.memory_limit"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("bad repository: error does not mention %q: %v", w, err)
		}
	}
}

// Traffic weights split a repository's versions: without a repository the
// file would be ignored, so the configuration is refused.
func TestTrafficFileNeedsRepository(t *testing.T) {
	c := Default()
	c.Repository.TrafficFile = "/run/traffic.json"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "repository.traffic_file needs repository.dir") {
		t.Errorf("error %v", err)
	}
	c.Repository.Dir = "/models"
	if err := c.Validate(); err != nil {
		t.Errorf("with a repository: %v", err)
	}
}

// ocr.languages and ocr.scripts add to the defaults; entries the OCR core
// cannot route by are refused, every one named.
func TestOCRLanguages(t *testing.T) {
	c, err := Parse([]byte("ocr:\n  languages: {jpn: ocr-ja, chi_sim: ocr-zh-v5}\n  scripts: {Katakana: jpn}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l := c.OCR.Languages; l["jpn"] != "ocr-ja" || l["chi_sim"] != "ocr-zh-v5" || l["zh"] != "ocr-zh" {
		t.Errorf("languages %v: want the file's entries over the defaults", l)
	}
	if s := c.OCR.Scripts; s["Katakana"] != "jpn" || s["Han"] != "chi_sim" || s["Latin"] != "eng" {
		t.Errorf("scripts %v", s)
	}
	_, err = Parse([]byte("ocr:\n  languages: {auto: ocr-zh, deu: 'Not A Name'}\n  scripts: {Cyrillic: auto, Greek: ''}\n"))
	for _, want := range []string{`"auto": "ocr-zh"`, `"deu": "Not A Name"`, `"Cyrillic": "auto"`, `"Greek": ""`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %s", err, want)
		}
	}
}
