package cli

import (
	"flag"
	"strings"

	"github.com/visionserve/visionserve/internal/config"
)

// repoFlags are serve's model repository flags. The trust lists are merged
// with the config file's: a flag adds a key, it never hides one.
type repoFlags struct {
	dir           string
	trustKeys     stringList
	trustCAs      stringList
	allowUnsigned bool
	trafficFile   string
}

func (f *repoFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dir, "models", "", "model repository directory (<dir>/<model>/<version>/, signed packages); without it the built-in models are served")
	fs.Var(&f.trustKeys, "trust-key", "trust packages signed with this PEM public key (repeatable)")
	fs.Var(&f.trustCAs, "trust-ca", "trust packages signed with certificates from this PEM CA file (repeatable)")
	fs.BoolVar(&f.allowUnsigned, "allow-unsigned", false, "also load packages without model.sig, after a manifest check (local experiments only)")
	fs.StringVar(&f.trafficFile, "traffic-file", "", `JSON file of the traffic weights to start with, {"<model>": {"weights": {"<version>": <weight>}}}; a missing file means none`)
}

func (f *repoFlags) apply(fs *flag.FlagSet, cfg *config.Config) {
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "models":
			cfg.Repository.Dir = f.dir
		case "allow-unsigned":
			cfg.Repository.Trust.AllowUnsigned = f.allowUnsigned
		case "traffic-file":
			cfg.Repository.TrafficFile = f.trafficFile
		}
	})
	cfg.Repository.Trust.Keys = append(cfg.Repository.Trust.Keys, f.trustKeys...)
	cfg.Repository.Trust.CACertificates = append(cfg.Repository.Trust.CACertificates, f.trustCAs...)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}
