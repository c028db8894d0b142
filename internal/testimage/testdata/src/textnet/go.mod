module example.com/bulwark-testimage/textnet

go 1.21

require (
	golang.org/x/net v0.0.0-20220722155237-a158d28d115b
	golang.org/x/text v0.3.7
)
