// Command jwtssh is a test-image program: it parses a JWT with
// github.com/dgrijalva/jwt-go v3.2.0+incompatible (GO-2020-0017, never fixed)
// and builds an SSH client config with an old golang.org/x/crypto
// pseudo-version (GO-2021-0227, GO-2023-2402 and others), so version
// matching meets "+incompatible" and pseudo-versions.
package main

import (
	"fmt"
	"os"

	"github.com/dgrijalva/jwt-go"
	"golang.org/x/crypto/ssh"
)

func main() {
	_, err := jwt.Parse(os.Getenv("TOKEN"), func(*jwt.Token) (any, error) { return []byte("k"), nil })
	fmt.Println(err)
	cfg := &ssh.ClientConfig{User: "demo", HostKeyCallback: ssh.InsecureIgnoreHostKey()}
	fmt.Println(cfg.User)
}
