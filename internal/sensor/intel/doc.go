// Package intel matches network connections against threat-intelligence
// lists: IPs, CIDRs and domain names loaded from files (plain lists, the TOR
// exit list format, CSV with comments) plus Bulwark's shipped list of public
// crypto-mining pools.
//
// Matching is a binary search over sorted, disjoint address ranges built
// once per load (IPv4 as uint32, IPv6 as two uint64), so a lookup on the
// sensor's hot path costs a few dozen comparisons and no allocation.
//
// Domain names cannot be matched on connect (the kernel sees addresses), so
// they are resolved when the lists are loaded, each with a timeout, and
// re-resolved by Refresh (the sensor calls it periodically); a connection to
// an address the name resolved to then matches the name. A name that does
// not resolve is reported in Set.Problems, not an error.
//
// This package must not import the sensor, the probe or client-go: it maps
// bytes and addresses to list entries, nothing more.
package intel
