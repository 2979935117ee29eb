// Command kube is the upstream Kubernetes control plane and node components
// in one multi-call binary, built from the k8s.io/kubernetes Go module:
//
//	kube apiserver|controller-manager|scheduler|kubelet|proxy|kubectl [flags]
//
// or, called through a link named kube-<component> (kube-apiserver, ...) or
// kubectl, that component. Each is the same program as
// k8s.io/kubernetes/cmd/<name>; kubectl matches the cluster's version.
// One binary builds the shared packages once: hack/setup-kube.sh builds it
// into the user cache; envtest uses its kube-apiserver (hack/setup-envtest.sh)
// and the local cluster all of it (hack/cluster.sh). This module is separate
// so that the main go.mod never requires k8s.io/kubernetes.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	_ "time/tzdata" // as upstream: timezones for CronJob validation

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectl "k8s.io/kubectl/pkg/cmd"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

var components = map[string]func() *cobra.Command{
	"apiserver":          func() *cobra.Command { return apiserver.NewAPIServerCommand() },
	"controller-manager": func() *cobra.Command { return controllermanager.NewControllerManagerCommand() },
	"scheduler":          func() *cobra.Command { return scheduler.NewSchedulerCommand() },
	"kubelet":            func() *cobra.Command { return kubelet.NewKubeletCommand() },
	"proxy":              func() *cobra.Command { return proxy.NewProxyCommand() },
	"kubectl":            func() *cobra.Command { return kubectl.NewDefaultKubectlCommand() },
}

func main() {
	name := strings.TrimPrefix(filepath.Base(os.Args[0]), "kube-")
	if _, ok := components[name]; !ok {
		if len(os.Args) < 2 {
			usage()
		}
		name = os.Args[1]
		os.Args = append(os.Args[:1], os.Args[2:]...)
	}
	cmd, ok := components[name]
	if !ok {
		usage()
	}
	os.Exit(cli.Run(cmd()))
}

func usage() {
	names := make([]string, 0, len(components))
	for n := range components {
		names = append(names, n)
	}
	slices.Sort(names)
	fmt.Fprintf(os.Stderr, "usage: kube %s [flags]\n", strings.Join(names, "|"))
	os.Exit(2)
}
