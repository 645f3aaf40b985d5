package httpx

import (
	"context"
	"errors"
	"fmt"
)

// StatusFault classifies a final non-2xx answer of role's endpoint (shown as
// url, already redacted): its kind from the status and the server's words, and
// a hint when it is a misconfiguration.
func StatusFault(role, url string, status int, msg string) *Fault {
	f := &Fault{Kind: Classify(status, msg), Role: role, URL: url, Status: status, Msg: msg}
	if f.Kind == Config {
		f.Hint = ConfigHint(role, status, msg)
	}
	return f
}

// PostChecked posts body to endpoint under e (set on ctx with WithExpect, so
// an *httpx.Client caps the answer at e.MaxBytes and asks again for a
// malformed one itself) and makes sure e.Check has accepted the 2xx answer:
// with another Doer the check runs here, and a malformed answer is asked
// again, up to 3 sends in all, then fails as an Item fault. Faults carry role
// and shown (the redacted URL); a non-2xx answer is classified by
// StatusFault, a transport error is an Endpoint fault, and a cancelled ctx
// returns ctx.Err().
func PostChecked(ctx context.Context, d Doer, endpoint, shown, apiKey, role string, body []byte, e Expect) error {
	check := e.Check
	accepted := false
	e.Check = func(b []byte) error {
		err := check(b)
		accepted = err == nil
		return err
	}
	ctx = WithExpect(ctx, e)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		accepted = false
		status, b, err := PostJSON(ctx, d, endpoint, apiKey, body)
		var f *Fault
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &f):
			return f
		case IsMalformed(err):
			lastErr = err
			continue
		default:
			return &Fault{Kind: Endpoint, Role: role, URL: shown, Err: err}
		}
		if status/100 != 2 {
			return StatusFault(role, shown, status, ErrorText(b))
		}
		if !accepted {
			if err := e.Check(b); err != nil {
				lastErr = err
				continue
			}
		}
		return nil
	}
	return &Fault{Kind: Item, Role: role, URL: shown, Err: lastErr,
		Msg: fmt.Sprintf("answer malformed 3 times: %v", lastErr)}
}
