// Package dotnet finds NuGet packages in .NET applications from the
// *.deps.json file the .NET SDK writes next to every built or published
// application ("language/dotnet/deps-json").
//
// A deps.json lists, under "libraries", everything the host resolves at
// run time, keyed "Name/Version". Entries of type "package" are NuGet
// packages and are reported as such. Entries of type "runtimepack" are the
// .NET runtime itself, bundled into self-contained applications
// ("runtimepack.Microsoft.NETCore.App.Runtime.linux-x64/8.0.14"); they are
// reported under the runtime pack's NuGet name without the "runtimepack."
// prefix, the name runtime advisories are filed under. "project" entries
// (the application and its own class libraries) and "referenceassembly"
// entries (framework facades, carrying assembly versions, not package
// versions) are skipped.
//
// Other software uses the same file suffix (WordPress ships
// wp-includes/assets/*.deps.json as JSON arrays of script handles): a file
// whose JSON is not an object is not a .NET deps file and yields nothing,
// without an error.
//
// Package.Indirect is set for packages no project of the application
// references directly (read from the "targets" graph). Names keep the
// casing the SDK recorded; NuGet names are case-insensitive and matching
// must compare them so.
//
// This package must not import internal/vulndb, and must not open files: it
// only reads the Input it is handed.
package dotnet
