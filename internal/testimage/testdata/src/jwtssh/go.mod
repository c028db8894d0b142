module example.com/bulwark-testimage/jwtssh

go 1.21

require (
	github.com/dgrijalva/jwt-go v3.2.0+incompatible
	golang.org/x/crypto v0.0.0-20200622213623-75b288015ac9
)

require golang.org/x/sys v0.0.0-20190412213103-97732733099d // indirect
