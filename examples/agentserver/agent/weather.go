package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// WeatherToolName is the name of the tool WeatherTool returns.
const WeatherToolName = "get_weather"

// weatherSource marks every answer of the weather tool as what it is.
const weatherSource = "fixed demo table, not a forecast"

// demoWeather is the weather tool's whole knowledge: fixed demo data, the
// same on every call, so that the example needs no network and no key.
var demoWeather = []struct {
	city    string   // the name the tool answers with
	aliases []string // lower-case names it is asked by
	sky     string
	tempC   int
}{
	{"SF", []string{"sf", "san francisco", "san francisco, ca", "san francisco, california"}, "fog", 16},
	{"Paris", []string{"paris"}, "light rain", 12},
	{"Lisbon", []string{"lisbon", "lisboa"}, "sunny", 22},
	{"London", []string{"london"}, "overcast", 11},
	{"New York", []string{"new york", "nyc", "new york city"}, "clear", 18},
	{"Berlin", []string{"berlin"}, "cloudy", 9},
	{"Tokyo", []string{"tokyo"}, "humid", 27},
}

// weatherReport is the output of the weather tool, as JSON.
type weatherReport struct {
	City         string `json:"city"`
	Sky          string `json:"sky,omitempty"`
	TemperatureC *int   `json:"temperature_c,omitempty"`
	Error        string `json:"error,omitempty"`
	Source       string `json:"source"`
}

// WeatherTool returns the tool get_weather(city), answered offline from a
// fixed table of demo data (SF, Paris, Lisbon, London, New York, Berlin,
// Tokyo), so that the example shows a tool call without any network or
// key. Its output is a JSON object such as
//
//	{"city":"SF","sky":"fog","temperature_c":16,"source":"fixed demo table, not a forecast"}
//
// and, for a city not in the table, {"city":"Oslo","error":"...","source":...}.
// Arguments that are not {"city": "<name>"} are an error that says so.
func WeatherTool() Tool {
	return Tool{
		Name:        WeatherToolName,
		Description: "Returns the current weather in a city, from a fixed table of demo data.",
		Parameters: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"city": map[string]any{"type": "string", "description": "The city, such as SF or Paris."},
			},
			"required":             []string{"city"},
			"additionalProperties": false,
		},
		Call: func(ctx context.Context, arguments string) (string, error) {
			var args struct {
				City string `json:"city"`
			}
			if err := json.Unmarshal([]byte(arguments), &args); err != nil || strings.TrimSpace(args.City) == "" {
				return "", fmt.Errorf(`%s: send the arguments {"city": "<name>"}, such as {"city": "SF"}`, WeatherToolName)
			}
			b, err := json.Marshal(lookUpWeather(args.City))
			return string(b), err
		},
	}
}

// lookUpWeather returns the demo table's weather for city.
func lookUpWeather(city string) weatherReport {
	key := strings.ToLower(strings.Join(strings.Fields(strings.Trim(city, ".!?\"' ")), " "))
	for _, w := range demoWeather {
		for _, a := range w.aliases {
			if a == key {
				t := w.tempC
				return weatherReport{City: w.city, Sky: w.sky, TemperatureC: &t, Source: weatherSource}
			}
		}
	}
	known := make([]string, len(demoWeather))
	for i, w := range demoWeather {
		known[i] = w.city
	}
	return weatherReport{
		City:   clip(city, 100),
		Error:  "no weather for this city in the demo table; it knows " + strings.Join(known, ", "),
		Source: weatherSource,
	}
}
