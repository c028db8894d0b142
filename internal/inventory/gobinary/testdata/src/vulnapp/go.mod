module example.com/vulnapp

go 1.21

require (
	golang.org/x/net v0.0.0-20220722155237-a158d28d115b
	golang.org/x/text v0.3.7
	rsc.io/quote v1.5.2
)

require rsc.io/sampler v1.3.0 // indirect

// A replaced dependency, so the extractor's handling of replacements is
// tested on a real binary: rsc.io/sampler v1.99.99 is a real module version.
replace rsc.io/sampler => rsc.io/sampler v1.99.99
