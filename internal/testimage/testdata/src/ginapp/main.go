// Command ginapp is a test-image program: a web server on an old
// github.com/gin-gonic/gin (GO-2020-0001, GO-2021-0052, GO-2023-1737) that
// decodes YAML with an old gopkg.in/yaml.v2 (GO-2020-0036, GO-2021-0061,
// GO-2022-0956).
package main

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"gopkg.in/yaml.v2"
)

func main() {
	var v map[string]any
	fmt.Println(yaml.Unmarshal([]byte("a: 1"), &v), v)
	r := gin.Default()
	r.GET("/ping", func(c *gin.Context) { c.String(http.StatusOK, "pong") })
	if len(v) > 1 {
		_ = r.Run("127.0.0.1:0")
	}
}
