// Package java finds the Maven artifacts in Java archives (jar, war, ear,
// and the jpi/hpi/par/sar variants), including archives nested inside them
// (WEB-INF/lib of a war, BOOT-INF/lib of a Spring Boot jar, the modules of
// an ear), read from memory without unpacking anything to disk.
//
// Each META-INF/maven/<groupId>/<artifactId>/pom.properties is one package,
// named "groupId:artifactId" as OSV's Maven ecosystem names packages, with
// its version verbatim. An archive without pom.properties (Gradle builds,
// repackaged jars) falls back to its manifest and file name; the groupId is
// then inferred from the OSGi Bundle-SymbolicName or Automatic-Module-Name
// when its last segment matches the artifactId, else from
// Implementation-Vendor-Id, and left out (Name is the bare artifactId, which
// matches no advisory) when nothing fits. Bulwark does not look archives up
// by checksum on Maven Central: scans run offline.
//
// Nesting is bounded in depth, in bytes inflated and buffered, and in zip
// entries examined, so a zip bomb costs bounded memory and time. Packages in
// nested archives keep the outer file as Location and the path inside it in
// LocationDetail.
//
// This package parses only the Input it is handed. It must not import
// internal/vulndb, internal/scan or anything that opens files.
package java
