package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"

	"github.com/visionserve/visionserve/internal/modelrepo"
)

// maxTrafficFile bounds repository.traffic_file: a few models' weights.
const maxTrafficFile = 1 << 20

// applyTrafficFile sets the traffic weights repository.traffic_file names
// before the first request: each model's entry is the body of PUT
// /v1/models/{model}/traffic. A pod the operator starts after a canary
// verdict thus serves by it from its first request, not from the moment
// the operator reaches it. A missing file means no weights (the operator
// mounts it from a ConfigMap that may not exist yet); a file that cannot be
// read as weights stops the start, as a bad configuration does. A model the
// repository does not have is skipped with a warning: its directory may
// appear later, and the weights set through the admin API then apply.
func applyTrafficFile(repo *modelrepo.Repository, path string, log *slog.Logger) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		log.Info("no traffic file: every model starts on its newest version", "file", path)
		return nil
	}
	if err != nil {
		return fmt.Errorf("repository.traffic_file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTrafficFile+1))
	if err != nil {
		return fmt.Errorf("repository.traffic_file: %w", err)
	}
	if len(data) > maxTrafficFile {
		return fmt.Errorf("repository.traffic_file %s: larger than %d bytes", path, maxTrafficFile)
	}
	var file map[string]struct {
		Weights map[string]int `json:"weights"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return fmt.Errorf(`repository.traffic_file %s: want {"<model>": {"weights": {"<version>": <weight>}}}: %w`, path, err)
	}
	names := make([]string, 0, len(file))
	for name := range file {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		weights := make(map[int]int, len(file[name].Weights))
		for k, w := range file[name].Weights {
			v, ok := modelrepo.ParseVersion(k)
			if !ok {
				return fmt.Errorf("repository.traffic_file %s: model %s: %q is not a version number", path, name, k)
			}
			weights[v] = w
		}
		_, err := repo.SetTraffic(name, weights)
		switch {
		case errors.Is(err, modelrepo.ErrModelNotFound):
			log.Warn("the traffic file names a model the repository does not have; its weights are skipped", "file", path, "model", name)
		case err != nil:
			return fmt.Errorf("repository.traffic_file %s: model %s: %w", path, name, err)
		default:
			log.Info("traffic weights from the traffic file", "file", path, "model", name, "weights", fmt.Sprint(weights))
		}
	}
	return nil
}
