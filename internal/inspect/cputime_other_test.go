//go:build !unix

package inspect

func processCPU() int64 { return 0 }
