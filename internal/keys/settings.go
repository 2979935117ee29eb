package keys

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Settings are the configuration file's encryption section. They name
// where the KEK is, never the KEK itself; setting KEKFile or KEKEnv turns
// encryption on.
type Settings struct {
	// Algorithm seals records under new data keys: aes-256-gcm (the
	// default, also when empty) or sm4-gcm.
	Algorithm Algorithm `yaml:"algorithm"`
	// KEKFile is a file holding the KEK (a mounted secret, mode 0600).
	KEKFile string `yaml:"kek_file"`
	// KEKEnv is an environment variable holding the KEK.
	KEKEnv string `yaml:"kek_env"`
}

// envName is what an environment variable's name may be (a KEK's base64
// never is: it ends with "=").
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Enabled reports whether a KEK is named.
func (s Settings) Enabled() bool { return s.KEKFile != "" || s.KEKEnv != "" }

// algorithm is the effective algorithm of new data keys.
func (s Settings) algorithm() Algorithm {
	if s.Algorithm == "" {
		return AES256GCM
	}
	return s.Algorithm
}

// Validate checks the section without reading the KEK.
func (s Settings) Validate() error {
	var errs []error
	if s.Algorithm != "" && s.Algorithm.KeySize() == 0 {
		errs = append(errs, fmt.Errorf("algorithm %q: use %s or %s", s.Algorithm, AES256GCM, SM4GCM))
	}
	if s.KEKFile != "" && s.KEKEnv != "" {
		errs = append(errs, errors.New("set kek_file or kek_env, not both"))
	}
	if s.Algorithm != "" && !s.Enabled() {
		errs = append(errs, fmt.Errorf("algorithm %s is set but no key-encryption key is: set kek_file or kek_env (the key itself never goes in this file)", s.Algorithm))
	}
	if s.KEKEnv != "" && !envName.MatchString(s.KEKEnv) {
		// Not echoed: it may be the key itself.
		errs = append(errs, errors.New("kek_env holds characters no variable name has: give the variable's name (e.g. VISIONSERVE_KEK), never the key"))
	}
	return errors.Join(errs...)
}

// Load reads the KEK the settings name: the Config to open stores with
// (a zero Config, encryption off, when none is named). A named KEK that
// is missing, empty or malformed is an error, never a silent fall back
// to clear records.
func (s Settings) Load() (Config, error) {
	if err := s.Validate(); err != nil {
		return Config{}, err
	}
	var text, source string
	switch {
	case s.KEKFile != "":
		source = "encryption.kek_file " + s.KEKFile
		b, err := os.ReadFile(s.KEKFile)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %w", source, err)
		}
		text = string(b)
	case s.KEKEnv != "":
		source = "$" + s.KEKEnv + " (encryption.kek_env)"
		text = os.Getenv(s.KEKEnv)
	default:
		return Config{}, nil
	}
	if strings.TrimSpace(text) == "" {
		return Config{}, fmt.Errorf("%s is empty: it must hold the key-encryption key (visionserve keys new)", source)
	}
	kek, err := ParseKEK(text, source)
	if err != nil {
		return Config{}, err
	}
	return Config{Algorithm: s.algorithm(), KEK: kek}, nil
}

// Config is what a store is opened with.
type Config struct {
	// Algorithm seals records under new data keys (a store's first, and
	// each one Ring.AddKey makes); "" means AES-256-GCM.
	Algorithm Algorithm
	// KEK seals the keyring; nil: encryption off.
	KEK *KEK
}

// Enabled reports whether the Config encrypts.
func (c Config) Enabled() bool { return c.KEK != nil }
