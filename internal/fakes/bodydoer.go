package fakes

import (
	"bytes"
	"io"
	"net/http"
)

// BodyDoer answers every request with status 200, a JSON content type and
// the body it holds, with no listener: for fuzzing how a client decodes
// any answer (the request's body is read and closed, as a server would).
type BodyDoer []byte

// Do answers req with b.
func (b BodyDoer) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(b)), Request: req}, nil
}
