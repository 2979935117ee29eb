// Command kube-apiserver is the upstream Kubernetes API server, built from the
// k8s.io/kubernetes Go module for the envtest control plane. It is the same
// program as k8s.io/kubernetes/cmd/kube-apiserver; hack/setup-envtest.sh builds
// it into the user cache. This module is separate so that the main go.mod
// never requires k8s.io/kubernetes.
package main

import (
	"os"
	_ "time/tzdata" // as upstream: timezones for CronJob validation

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
