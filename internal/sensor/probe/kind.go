package probe

import "github.com/bulwark-security/bulwark/internal/rules"

// Event kinds as the BPF programs write them (enum kind in bpf/sensor.bpf.c).
const (
	kindExec = 1 + iota
	kindExit
	kindOpen
	kindOpenat
	kindOpenat2
	kindConnect
	kindListen
	kindSetuid
	kindSetgid
	kindSetresuid
	kindSetresgid
	kindPtrace
	kindUnshare
	kindSetns
	kindClone
	kindClone3
	kindInitModule
	kindFinitModule
	kindChmod
	kindFchmod
	kindFchmodat
	kindUnlink
	kindUnlinkat
	kindRename
	kindRenameat
	kindRenameat2
	kindTruncate
	kindMemfdCreate
	kindMax
)

// kindType maps a kernel event kind to the rule engine's event type.
var kindType = [kindMax]rules.EventType{
	kindExec:        rules.EventExecve,
	kindExit:        rules.EventProcexit,
	kindOpen:        rules.EventOpen,
	kindOpenat:      rules.EventOpenat,
	kindOpenat2:     rules.EventOpenat2,
	kindConnect:     rules.EventConnect,
	kindListen:      rules.EventListen,
	kindSetuid:      rules.EventSetuid,
	kindSetgid:      rules.EventSetgid,
	kindSetresuid:   rules.EventSetresuid,
	kindSetresgid:   rules.EventSetresgid,
	kindPtrace:      rules.EventPtrace,
	kindUnshare:     rules.EventUnshare,
	kindSetns:       rules.EventSetns,
	kindClone:       rules.EventClone,
	kindClone3:      rules.EventClone3,
	kindInitModule:  rules.EventInitModule,
	kindFinitModule: rules.EventFinitModule,
	kindChmod:       rules.EventChmod,
	kindFchmod:      rules.EventFchmod,
	kindFchmodat:    rules.EventFchmodat,
	kindUnlink:      rules.EventUnlink,
	kindUnlinkat:    rules.EventUnlinkat,
	kindRename:      rules.EventRename,
	kindRenameat:    rules.EventRenameat,
	kindRenameat2:   rules.EventRenameat2,
	kindTruncate:    rules.EventTruncate,
	kindMemfdCreate: rules.EventMemfdCreate,
}

// Header flags (F_* in the C code).
const (
	flagPrevented = 0x1
	flagUpper     = 0x2
	flagMemfd     = 0x4
	flagArgsTrunc = 0x8
	flagPathTrunc = 0x10
	flagNameOnly  = 0x20
	flagOverlay   = 0x40
	flagCwdTrunc  = 0x80
)

// Sample layout (bytes), checked against the generated Go structs in
// layout_test.go so a change to the C structs cannot go unnoticed.
const (
	hdrSize      = 64
	smallSize    = 96
	pathSize     = 360
	execSize     = 1152
	offIno       = 64
	offDev       = 72
	offFnameLen  = 76
	offArgsLen   = 78
	offAncestors = 80
	numAncestors = 3
	offFilename  = 128
	offArgs      = 384
	offCwd       = 896
	cwdParts     = 8
	cwdPartLen   = 32
	offA         = 64
	offPathLen   = 96
	offPath      = 104
	commLen      = 16
)
