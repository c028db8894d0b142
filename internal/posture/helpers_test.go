package posture

import (
	"testing"

	"k8s.io/pod-security-admission/api"
)

func mustLevelVersion(t testing.TB, level, version string) api.LevelVersion {
	t.Helper()
	l, err := api.ParseLevel(level)
	if err != nil {
		t.Fatal(err)
	}
	v, err := api.ParseVersion(version)
	if err != nil {
		t.Fatal(err)
	}
	return api.LevelVersion{Level: l, Version: v}
}
