package retriever

// porterStem stems w with the original Porter algorithm exactly as Lucene's
// PorterStemFilter does (a port of Martin Porter's reference C implementation,
// including its two departures from the 1980 paper: "bli"->"ble" and
// "logi"->"log"). Words of one or two characters are returned unchanged. It is
// not Snowball English ("Porter2"), which stems differently.
func porterStem(w string) string {
	if len(w) <= 2 {
		return w
	}
	b := []rune(w)
	s := porter{b: b, k: len(b) - 1}
	if s.k <= 1 {
		return w
	}
	s.step1ab()
	if s.k > 0 {
		s.step1c()
		s.step2()
		s.step3()
		s.step4()
		s.step5()
	}
	return string(s.b[:s.k+1])
}

// porter holds the word being stemmed: b[0..k] is the current stem and j marks
// the end of the stem before a suffix matched by ends.
type porter struct {
	b    []rune
	k, j int
}

func (p *porter) cons(i int) bool {
	switch p.b[i] {
	case 'a', 'e', 'i', 'o', 'u':
		return false
	case 'y':
		if i == 0 {
			return true
		}
		return !p.cons(i - 1)
	}
	return true
}

// m counts the consonant-vowel sequences in b[0..j].
func (p *porter) m() int {
	n, i := 0, 0
	for {
		if i > p.j {
			return n
		}
		if !p.cons(i) {
			break
		}
		i++
	}
	i++
	for {
		for {
			if i > p.j {
				return n
			}
			if p.cons(i) {
				break
			}
			i++
		}
		i++
		n++
		for {
			if i > p.j {
				return n
			}
			if !p.cons(i) {
				break
			}
			i++
		}
		i++
	}
}

func (p *porter) vowelInStem() bool {
	for i := 0; i <= p.j; i++ {
		if !p.cons(i) {
			return true
		}
	}
	return false
}

func (p *porter) doublec(j int) bool {
	if j < 1 || p.b[j] != p.b[j-1] {
		return false
	}
	return p.cons(j)
}

func (p *porter) cvc(i int) bool {
	if i < 2 || !p.cons(i) || p.cons(i-1) || !p.cons(i-2) {
		return false
	}
	switch p.b[i] {
	case 'w', 'x', 'y':
		return false
	}
	return true
}

func (p *porter) ends(s string) bool {
	l := len(s)
	if l > p.k+1 {
		return false
	}
	for i := 0; i < l; i++ {
		if p.b[p.k-l+1+i] != rune(s[i]) {
			return false
		}
	}
	p.j = p.k - l
	return true
}

func (p *porter) setto(s string) {
	l := len(s)
	need := p.j + 1 + l
	for len(p.b) < need {
		p.b = append(p.b, 0)
	}
	for i := 0; i < l; i++ {
		p.b[p.j+1+i] = rune(s[i])
	}
	p.k = p.j + l
}

func (p *porter) r(s string) {
	if p.m() > 0 {
		p.setto(s)
	}
}

func (p *porter) step1ab() {
	if p.b[p.k] == 's' {
		switch {
		case p.ends("sses"):
			p.k -= 2
		case p.ends("ies"):
			p.setto("i")
		case p.b[p.k-1] != 's':
			p.k--
		}
	}
	if p.ends("eed") {
		if p.m() > 0 {
			p.k--
		}
	} else if (p.ends("ed") || p.ends("ing")) && p.vowelInStem() {
		p.k = p.j
		switch {
		case p.ends("at"):
			p.setto("ate")
		case p.ends("bl"):
			p.setto("ble")
		case p.ends("iz"):
			p.setto("ize")
		case p.doublec(p.k):
			p.k--
			switch p.b[p.k] {
			case 'l', 's', 'z':
				p.k++
			}
		default:
			p.j = p.k
			if p.m() == 1 && p.cvc(p.k) {
				p.setto("e")
			}
		}
	}
}

func (p *porter) step1c() {
	if p.ends("y") && p.vowelInStem() {
		p.b[p.k] = 'i'
	}
}

func (p *porter) step2() {
	if p.k < 1 {
		return
	}
	switch p.b[p.k-1] {
	case 'a':
		if p.ends("ational") {
			p.r("ate")
		} else if p.ends("tional") {
			p.r("tion")
		}
	case 'c':
		if p.ends("enci") {
			p.r("ence")
		} else if p.ends("anci") {
			p.r("ance")
		}
	case 'e':
		if p.ends("izer") {
			p.r("ize")
		}
	case 'l':
		if p.ends("bli") {
			p.r("ble")
		} else if p.ends("alli") {
			p.r("al")
		} else if p.ends("entli") {
			p.r("ent")
		} else if p.ends("eli") {
			p.r("e")
		} else if p.ends("ousli") {
			p.r("ous")
		}
	case 'o':
		if p.ends("ization") {
			p.r("ize")
		} else if p.ends("ation") {
			p.r("ate")
		} else if p.ends("ator") {
			p.r("ate")
		}
	case 's':
		if p.ends("alism") {
			p.r("al")
		} else if p.ends("iveness") {
			p.r("ive")
		} else if p.ends("fulness") {
			p.r("ful")
		} else if p.ends("ousness") {
			p.r("ous")
		}
	case 't':
		if p.ends("aliti") {
			p.r("al")
		} else if p.ends("iviti") {
			p.r("ive")
		} else if p.ends("biliti") {
			p.r("ble")
		}
	case 'g':
		if p.ends("logi") {
			p.r("log")
		}
	}
}

func (p *porter) step3() {
	switch p.b[p.k] {
	case 'e':
		if p.ends("icate") {
			p.r("ic")
		} else if p.ends("ative") {
			p.r("")
		} else if p.ends("alize") {
			p.r("al")
		}
	case 'i':
		if p.ends("iciti") {
			p.r("ic")
		}
	case 'l':
		if p.ends("ical") {
			p.r("ic")
		} else if p.ends("ful") {
			p.r("")
		}
	case 's':
		if p.ends("ness") {
			p.r("")
		}
	}
}

func (p *porter) step4() {
	if p.k < 1 {
		return
	}
	matched := false
	switch p.b[p.k-1] {
	case 'a':
		matched = p.ends("al")
	case 'c':
		matched = p.ends("ance") || p.ends("ence")
	case 'e':
		matched = p.ends("er")
	case 'i':
		matched = p.ends("ic")
	case 'l':
		matched = p.ends("able") || p.ends("ible")
	case 'n':
		matched = p.ends("ant") || p.ends("ement") || p.ends("ment") || p.ends("ent")
	case 'o':
		matched = (p.ends("ion") && p.j >= 0 && (p.b[p.j] == 's' || p.b[p.j] == 't')) || p.ends("ou")
	case 's':
		matched = p.ends("ism")
	case 't':
		matched = p.ends("ate") || p.ends("iti")
	case 'u':
		matched = p.ends("ous")
	case 'v':
		matched = p.ends("ive")
	case 'z':
		matched = p.ends("ize")
	}
	if matched && p.m() > 1 {
		p.k = p.j
	}
}

func (p *porter) step5() {
	p.j = p.k
	if p.b[p.k] == 'e' {
		a := p.m()
		if a > 1 || (a == 1 && !p.cvc(p.k-1)) {
			p.k--
		}
	}
	if p.b[p.k] == 'l' && p.doublec(p.k) && p.m() > 1 {
		p.k--
	}
}
