// Command etcd is etcd's server entry point, built from the Go module proxy
// so the test control plane needs nothing but `go`.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
