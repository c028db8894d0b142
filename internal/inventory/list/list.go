// Package list is the one explicit list of inventory extractors. A new
// extractor is added here, nowhere else: there is no registration from
// init().
package list

import (
	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/apk"
	"github.com/bulwark-security/bulwark/internal/inventory/dotnet"
	"github.com/bulwark-security/bulwark/internal/inventory/dpkg"
	"github.com/bulwark-security/bulwark/internal/inventory/gobinary"
	"github.com/bulwark-security/bulwark/internal/inventory/java"
	"github.com/bulwark-security/bulwark/internal/inventory/npm"
	"github.com/bulwark-security/bulwark/internal/inventory/osrelease"
	"github.com/bulwark-security/bulwark/internal/inventory/php"
	"github.com/bulwark-security/bulwark/internal/inventory/python"
	"github.com/bulwark-security/bulwark/internal/inventory/rpm"
	"github.com/bulwark-security/bulwark/internal/inventory/ruby"
	"github.com/bulwark-security/bulwark/internal/inventory/rustbinary"
)

// All returns a new instance of every extractor.
func All() []inventory.Extractor {
	return []inventory.Extractor{
		osrelease.New(),
		dpkg.New(),
		apk.New(),
		rpm.New(),
		gobinary.New(),
		rustbinary.New(),
		java.New(),
		npm.NewPackageJSON(),
		npm.NewLockfile(),
		python.NewDistInfo(),
		python.NewLockfile(),
		ruby.NewGemspec(),
		ruby.NewGemfileLock(),
		dotnet.NewDepsJSON(),
		php.NewInstalled(),
		php.NewLock(),
	}
}
