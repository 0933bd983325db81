// Command kube-controller-manager is the real Kubernetes controller manager, built from the
// k8s.io/kubernetes module at the version go.mod pins: the tests run its garbage collector,
// namespace, service-account and workload controllers (Deployments become ReplicaSets and
// Pods, which admission then judges; there is no kubelet to run them).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	command := app.NewControllerManagerCommand()
	os.Exit(cli.Run(command))
}
