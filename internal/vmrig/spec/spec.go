// Package spec holds the job description shared by the vmrig host program
// and the guest init it builds. It is serialised as JSON into the initramfs
// at JobsPath.
package spec

import "time"

// JobsPath is where the host puts the job list inside the guest.
const JobsPath = "/etc/vmrig/jobs.json"

// Marker prefixes written by the guest init on the job channel: /dev/hvc0, a
// virtio console (the default, vmrig -channel virtio), or /dev/ttyS1, the
// second serial port (-channel serial). The guest init picks the device from
// vmrig.channel= on the kernel command line. The console, /dev/ttyS0, only
// carries kernel messages and init diagnostics. Every marker starts at the
// beginning of a line.
const (
	MarkerPrefix = "VMRIG-"
	MarkerInfo   = "VMRIG-INFO"   // VMRIG-INFO key=value (kernel version etc.)
	MarkerStart  = "VMRIG-START"  // VMRIG-START <job>
	MarkerResult = "VMRIG-RESULT" // VMRIG-RESULT <job> exit=<code> seconds=<s> [timeout=1]
	MarkerDone   = "VMRIG-DONE"   // all jobs finished, powering off
)

// Config is the whole guest configuration.
type Config struct {
	// Modules are preloaded with /sbin/modprobe before the first job.
	Modules []string `json:"modules"`
	// Env is added to the environment of every job (KEY=VALUE).
	Env  []string `json:"env"`
	Jobs []Job    `json:"jobs"`
}

// Job is one program run in the guest.
type Job struct {
	Name    string        `json:"name"`
	Argv    []string      `json:"argv"` // Argv[0] is an absolute guest path
	Timeout time.Duration `json:"timeout"`
}
