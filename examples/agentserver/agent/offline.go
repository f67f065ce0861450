package agent

import (
	"context"
	"encoding/json"
	"fmt"
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
//   - asked about the weather ("What's the weather where I live?", "What's
//     the weather in Paris?"), it calls the get_weather tool (WeatherTool)
//     for the city of the question or, failing that, the city the user said
//     they live in, and answers from the tool's output once it has it;
//   - to anything else it repeats what it heard and says what it can do.
//
// Its replies are streamed word by word.
type OfflineModel struct{}

var _ Model = OfflineModel{}

// Name implements Model.
func (OfflineModel) Name() string { return OfflineModelName }

// Respond implements Model.
func (OfflineModel) Respond(ctx context.Context, req Request) ([]Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	call, text := offlineRespond(req.Items, req.Tools)
	if call != nil {
		return []Item{*call}, nil
	}
	if req.OnDelta != nil {
		for _, word := range strings.SplitAfter(text, " ") {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := req.OnDelta(word); err != nil {
				return nil, err
			}
		}
	}
	return []Item{AssistantMessage(text)}, nil
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
	cutRE          = regexp.MustCompile(`(?i)\s*(?:,|;|:|\s(?:and|but|with|since|for|because|now|today|too)\s).*$`)
	askCityRE      = regexp.MustCompile(`(?i)\b(?:what|which)\s+(?:city|town|place)\b|\bwhere\s+(?:do|did)\s+I\s+(?:say\s+I\s+)?live\b|\bwhere\s+am\s+I\s+from\b`)
	askNameRE      = regexp.MustCompile(`(?i)\bwhat(?:'s|\s+is)\s+my\s+name\b|\bwho\s+am\s+I\b`)
	askWeatherRE   = regexp.MustCompile(`(?i)\bweather\b`)
	weatherCityRE  = regexp.MustCompile(`(?i)\bweather\s+(?:like\s+)?(?:in|for|at)\s+(.+?)(?:\s+(?:today|now|right now|tomorrow))?\s*[?.!]*$`)
	trailingPuncts = ".!?\"' "
)

// offlineRespond computes the offline model's output for the conversation
// items: a call of the weather tool, or the text of its reply.
func offlineRespond(items []Item, tools []Tool) (call *Item, text string) {
	var userTexts []string
	lastUser := -1
	for i, item := range items {
		if role, t, ok := messageText(item); ok && role == "user" {
			userTexts = append(userTexts, t)
			lastUser = i
		}
	}
	if len(userTexts) == 0 {
		return nil, offlinePrefix + "There is no user message to answer."
	}
	last := userTexts[len(userTexts)-1]
	city := latestFact(userTexts, cityRE)
	name := latestFact(userTexts, nameRE)

	if askWeatherRE.MatchString(last) {
		return offlineWeather(items[lastUser+1:], tools, last, city)
	}

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
		return nil, offlinePrefix + strings.Join(answers, " ")
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
		return nil, offlinePrefix + strings.Join(answers, " ")
	}
	return nil, offlinePrefix + "You said: \"" + clip(last, 200) + "\". I am not a language model: " +
		"I only recall where you said you live and your name from this conversation, " +
		"and look up the weather there with a tool."
}

// offlineWeather answers a question about the weather. turn holds the items
// after the question: the calls and outputs of this turn so far. Once the
// weather tool has answered, the reply quotes it; before, the model calls it
// for the city of the question, else the city the user lives in.
func offlineWeather(turn []Item, tools []Tool, question, home string) (*Item, string) {
	city, fromHome := "", false
	for _, sentence := range sentenceRE.FindAllString(question, -1) {
		if m := weatherCityRE.FindStringSubmatch(strings.TrimSpace(sentence)); m != nil {
			city = strings.TrimRight(cutRE.ReplaceAllString(m[1], ""), trailingPuncts)
		}
	}
	if city == "" || strings.EqualFold(city, "where I live") {
		city, fromHome = home, true
	}
	said := ""
	if fromHome && city != "" {
		said = "You said you live in " + city + ". "
	}

	// The tool's output, if this turn already called it.
	calls := map[string]bool{}
	for _, item := range turn {
		switch {
		case item.OfFunctionCall != nil && item.OfFunctionCall.Name == WeatherToolName:
			calls[item.OfFunctionCall.CallID] = true
		case item.OfFunctionCallOutput != nil && calls[item.OfFunctionCallOutput.CallID.Value]:
			return nil, offlinePrefix + said + weatherSentence(functionOutputText(item.OfFunctionCallOutput))
		}
	}

	switch {
	case city == "":
		return nil, offlinePrefix + "You have not told me where you live, so I do not know which city's weather to look up. " +
			"Tell me (\"I live in Paris\") or ask about a city (\"What's the weather in Paris?\")."
	case len(tools) == 0 || !hasTool(tools, WeatherToolName):
		return nil, offlinePrefix + said + "I have no " + WeatherToolName + " tool here, so I cannot look up the weather in " + city + "."
	}
	args, _ := json.Marshal(map[string]string{"city": city})
	call := FunctionCall(newID("call_"), WeatherToolName, string(args))
	return &call, ""
}

func hasTool(tools []Tool, name string) bool {
	_, ok := findTool(tools, name)
	return ok
}

// weatherSentence turns the weather tool's output into a sentence.
func weatherSentence(output string) string {
	var r weatherReport
	if err := json.Unmarshal([]byte(output), &r); err != nil || r.City == "" {
		return WeatherToolName + " answered: " + clip(output, 200)
	}
	if r.Error != "" || r.TemperatureC == nil {
		return WeatherToolName + " has no weather for " + r.City + ": " + r.Error + "."
	}
	return fmt.Sprintf("%s says: %s, %d °C in %s (%s).", WeatherToolName, r.Sky, *r.TemperatureC, r.City, r.Source)
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
