// Package tokens is synthq's one token estimate, used wherever no tokenizer
// is given: by the LLM client (prompt and completion counts, the tokens per
// minute budget, --dry-run), and by the window cut of the teacher and the
// embedder (internal/window). Both rates are documented in the README.
package tokens

// Estimate is a text's token count for a chat LLM when no tokenizer is
// given: one token per 4 bytes, rounded up. English prose runs at 4–4.5
// bytes a token with Llama 3's 128k vocabulary, so this errs on the high
// side. A chat message adds PerMessage for the template's role markers.
func Estimate(text string) int { return (len(text) + 3) / 4 }

// PerMessage is the tokens a chat template adds around each message
// (Llama 3's header tokens).
const PerMessage = 4

// Encoder is a text's token count for a cross-encoder or an embedding model
// when no tokenizer is given: one token per 3 bytes, rounded up. That is
// Estimate's 4 bytes a token with a margin of a quarter, because their
// vocabularies (BERT WordPiece, XLM-R) split domain text (numbers, chemical
// and gene names) finer than Llama 3's does: a cut by this estimate stays
// inside the window for English and scientific prose.
func Encoder(text string) int { return (len(text) + 2) / 3 }
