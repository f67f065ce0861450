package agent

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
)

// OfflineModelName is the name the offline model reports in responses.
const OfflineModelName = "offline-demo-model"

// offlinePrefix starts every reply of the offline model, so that nobody takes
// it for a language model.
const offlinePrefix = "[offline demo model] "

// OfflineModel is a small rule-based model that needs no network and no
// credentials. It is not a language model, and every reply starts with
// "[offline demo model]". It answers from the conversation it is given, which
// shows that the session's history reached it:
//
//   - it remembers where the user said they live ("I live in SF", "I'm from
//     Paris", "I moved to Lisbon") and their name ("my name is Ada", "call me
//     Ada"), the latest statement winning;
//   - it answers "What city did I say I live in?", "Where do I live?",
//     "What is my name?" and "Who am I?" from those statements;
//   - to anything else it repeats what it heard and says what it can do.
//
// Its replies are streamed word by word.
type OfflineModel struct{}

var _ Model = OfflineModel{}

// Name implements Model.
func (OfflineModel) Name() string { return OfflineModelName }

// Reply implements Model.
func (OfflineModel) Reply(ctx context.Context, items []json.RawMessage, onDelta func(string) error) (string, error) {
	text := offlineReply(items)
	if onDelta != nil {
		for _, word := range strings.SplitAfter(text, " ") {
			if err := ctx.Err(); err != nil {
				return "", err
			}
			if err := onDelta(word); err != nil {
				return "", err
			}
		}
	}
	return text, nil
}

var (
	sentenceRE = regexp.MustCompile(`[^.!?\n]+[.!?]*`)
	cityRE     = []*regexp.Regexp{
		regexp.MustCompile(`(?i)\bI(?:\s+still)?\s+(?:live|am living|'m living|reside)\s+in\s+(.+)$`),
		regexp.MustCompile(`(?i)\bI(?:'m|\s+am)\s+(?:from|based in|living in)\s+(.+)$`),
		regexp.MustCompile(`(?i)\bI(?:\s+have|'ve)?\s+(?:just\s+)?moved\s+to\s+(.+)$`),
	}
	nameRE = []*regexp.Regexp{
		regexp.MustCompile(`(?i)\bmy\s+name\s+is\s+(.+)$`),
		regexp.MustCompile(`(?i)\bcall\s+me\s+(.+)$`),
	}
	// cutRE ends a captured fact at the first clause that follows it.
	cutRE          = regexp.MustCompile(`(?i)\s*(?:,|;|:|\s(?:and|but|with|since|for|because|now|too)\s).*$`)
	askCityRE      = regexp.MustCompile(`(?i)\b(?:what|which)\s+(?:city|town|place)\b|\bwhere\s+(?:do|did)\s+I\s+(?:say\s+I\s+)?live\b|\bwhere\s+am\s+I\s+from\b`)
	askNameRE      = regexp.MustCompile(`(?i)\bwhat(?:'s|\s+is)\s+my\s+name\b|\bwho\s+am\s+I\b`)
	trailingPuncts = ".!?\"' "
)

// offlineReply computes the offline model's reply to the conversation items.
func offlineReply(items []json.RawMessage) string {
	var userTexts []string
	for _, item := range items {
		m := parseMessage(item)
		if m.isMessage() && m.Role == "user" {
			userTexts = append(userTexts, m.text())
		}
	}
	if len(userTexts) == 0 {
		return offlinePrefix + "There is no user message to answer."
	}
	last := userTexts[len(userTexts)-1]
	city := latestFact(userTexts, cityRE)
	name := latestFact(userTexts, nameRE)

	askCity, askName := askCityRE.MatchString(last), askNameRE.MatchString(last)
	var answers []string
	if askName {
		if name != "" {
			answers = append(answers, "You said your name is "+name+".")
		} else {
			answers = append(answers, "You have not told me your name in this conversation.")
		}
	}
	if askCity {
		if city != "" {
			answers = append(answers, "You said you live in "+city+".")
		} else {
			answers = append(answers, "You have not told me where you live in this conversation.")
		}
	}
	if len(answers) > 0 {
		return offlinePrefix + strings.Join(answers, " ")
	}

	// Not a question it knows: acknowledge what the last message stated.
	lastOnly := []string{last}
	if n := latestFact(lastOnly, nameRE); n != "" {
		answers = append(answers, "Nice to meet you, "+n+".")
	}
	if c := latestFact(lastOnly, cityRE); c != "" {
		answers = append(answers, "Noted: you live in "+c+". Ask me later which city you said you live in.")
	}
	if len(answers) > 0 {
		return offlinePrefix + strings.Join(answers, " ")
	}
	return offlinePrefix + "You said: \"" + clip(last, 200) + "\". I am not a language model: " +
		"I only recall where you said you live and your name from this conversation."
}

// latestFact returns the fact that the patterns capture in the latest
// statement (a sentence that is not a question) of texts, or "".
func latestFact(texts []string, patterns []*regexp.Regexp) string {
	fact := ""
	for _, text := range texts {
		for _, sentence := range sentenceRE.FindAllString(text, -1) {
			sentence = strings.TrimSpace(sentence)
			if strings.HasSuffix(sentence, "?") {
				continue
			}
			sentence = strings.TrimRight(sentence, trailingPuncts)
			for _, re := range patterns {
				if m := re.FindStringSubmatch(sentence); m != nil {
					f := strings.TrimRight(cutRE.ReplaceAllString(m[1], ""), trailingPuncts)
					if f != "" {
						fact = f
					}
				}
			}
		}
	}
	return fact
}

// clip shortens s to at most n runes.
func clip(s string, n int) string {
	r := []rune(strings.Join(strings.Fields(s), " "))
	if len(r) <= n {
		return string(r)
	}
	return string(r[:n]) + "..."
}
