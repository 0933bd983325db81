// Command etcd is the real etcd server at the version kube-apiserver's module requires
// (go.etcd.io/etcd/server/v3, pinned in go.mod).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
