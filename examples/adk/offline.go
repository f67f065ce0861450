package main

import (
	"context"
	"fmt"
	"iter"
	"regexp"
	"strings"

	"google.golang.org/adk/v2/model"
	"google.golang.org/genai"
)

// offlineModelName is the name the offline model reports.
const offlineModelName = "offline-demo-model"

// offlinePrefix starts every text reply of the offline model, so that nobody
// takes it for a language model.
const offlinePrefix = "[offline demo model] "

// offlineModel is a small rule-based ADK model.LLM that needs no network and
// no credentials. It is not a language model. It answers from the contents
// ADK sends it, which shows that the session's history, read back from the
// database, reached it:
//
//   - "I live in X" is acknowledged; "What city did I say I live in?" is
//     answered from the latest such statement in the history;
//   - "What's the weather ...?" calls the get_weather tool (when the agent
//     declares it) with that city, and the tool's response, sent back by
//     ADK, becomes the answer;
//   - anything else is repeated back with what it can do.
type offlineModel struct{}

var _ model.LLM = offlineModel{}

// Name implements model.LLM.
func (offlineModel) Name() string { return offlineModelName }

// GenerateContent implements model.LLM. It yields one complete response,
// streamed or not.
func (offlineModel) GenerateContent(ctx context.Context, req *model.LLMRequest, _ bool) iter.Seq2[*model.LLMResponse, error] {
	return func(yield func(*model.LLMResponse, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(nil, err)
			return
		}
		yield(&model.LLMResponse{Content: offlineReply(req), TurnComplete: true}, nil)
	}
}

var (
	liveInRE   = regexp.MustCompile(`(?i)\bI\s+live\s+in\s+([^.!?,;]+)`)
	askCityRE  = regexp.MustCompile(`(?i)\bwhat\s+city\b|\bwhere\s+do\s+I\s+live\b`)
	askWeather = regexp.MustCompile(`(?i)\bweather\b`)
)

// offlineReply computes the offline model's answer to req.
func offlineReply(req *model.LLMRequest) *genai.Content {
	if len(req.Contents) == 0 {
		return reply("There is nothing to answer.")
	}
	// The tool's response to this model's call: answer with it.
	last := req.Contents[len(req.Contents)-1]
	for _, p := range last.Parts {
		if fr := p.FunctionResponse; fr != nil && fr.Name == "get_weather" {
			if e, ok := fr.Response["error"]; ok {
				return reply(fmt.Sprintf("get_weather failed: %v", e))
			}
			return reply(fmt.Sprintf("The weather in %v: %v.", fr.Response["city"], fr.Response["forecast"]))
		}
	}

	var userTexts []string
	for _, c := range req.Contents {
		if c.Role == genai.RoleUser {
			if t := textOf(c); t != "" {
				userTexts = append(userTexts, t)
			}
		}
	}
	if len(userTexts) == 0 {
		return reply("There is no user message to answer.")
	}
	question := userTexts[len(userTexts)-1]
	city := ""
	for _, t := range userTexts {
		if m := liveInRE.FindStringSubmatch(t); m != nil && !strings.HasSuffix(strings.TrimSpace(t), "?") {
			city = strings.TrimSpace(m[1])
		}
	}
	_, hasWeatherTool := req.Tools["get_weather"]
	switch {
	case askWeather.MatchString(question) && city == "":
		return reply("You have not told me where you live, so I do not know which city's weather to look up.")
	case askWeather.MatchString(question) && hasWeatherTool:
		return &genai.Content{Role: genai.RoleModel, Parts: []*genai.Part{
			genai.NewPartFromFunctionCall("get_weather", map[string]any{"city": city}),
		}}
	case askCityRE.MatchString(question) && city != "":
		return reply("You said you live in " + city + ".")
	case askCityRE.MatchString(question):
		return reply("You have not told me where you live in this conversation.")
	case liveInRE.MatchString(question):
		return reply("Noted: you live in " + city + ". Ask me which city you said you live in, or about the weather there.")
	default:
		return reply(fmt.Sprintf("You said: %q. I am not a language model: I only recall where you said you live and look up its weather.", question))
	}
}

// reply is a text answer of the offline model.
func reply(text string) *genai.Content {
	return genai.NewContentFromText(offlinePrefix+text, genai.RoleModel)
}
