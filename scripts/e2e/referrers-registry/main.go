// A registry with the OCI 1.1 referrers API, in memory, for tests/e2e_sbom.rs: the harness's
// distribution registry has none (it answers 404), so the SBOM's listing by the API is
// tested here. go-containerregistry's registry package with its referrers support on,
// bound to 127.0.0.1 only; the port it took is printed on the first line of stdout.
//
// One spec gap of that package is filled in: a finished blob upload (201 Created) must name
// the blob in a Location header (distribution-spec, "Pushing blobs"); the package sends none,
// and clients that follow the spec (oci-client) refuse the answer.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// locating adds the Location of the blob to a finished upload's 201 when it has none.
type locating struct {
	http.ResponseWriter
	blob string
}

func (w locating) WriteHeader(code int) {
	if code == http.StatusCreated && w.Header().Get("Location") == "" {
		w.Header().Set("Location", w.blob)
	}
	w.ResponseWriter.WriteHeader(code)
}

func withLocation(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, _, upload := strings.Cut(r.URL.Path, "/blobs/uploads/")
		digest := r.URL.Query().Get("digest")
		if upload && digest != "" && (r.Method == http.MethodPut || r.Method == http.MethodPost) {
			w = locating{w, repo + "/blobs/" + digest}
		}
		next.ServeHTTP(w, r)
	})
}

func main() {
	port := flag.Int("port", 0, "port on 127.0.0.1 (0: any free one)")
	flag.Parse()
	listener, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "%d\n", listener.Addr().(*net.TCPAddr).Port)
	server := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler:           withLocation(registry.New(registry.WithReferrersSupport(true))),
	}
	log.Fatal(server.Serve(listener))
}
