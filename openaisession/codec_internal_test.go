package openaisession

import "testing"

func TestHasLoneSurrogate(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{`"plain"`, false},
		{`"\u00e9 \u0000 \n \\ud800"`, false}, // the last is an escaped backslash, then text
		{`"\ud83c\udf1e"`, false},
		{`"\uD83C\uDF1E"`, false},
		{`"\ud800"`, true},
		{`"\udc00"`, true},
		{`"\ud800x"`, true},
		{`"\ud800\n"`, true},
		{`"\ud800\u0041"`, true},
		{`"\ud800\ud800\udc00"`, true},
		{`"\udf1e\ud83c"`, true},
		{`"\u12"`, false},
		{`\`, false},
	}
	for _, tt := range tests {
		if got := hasLoneSurrogate([]byte(tt.in)); got != tt.want {
			t.Errorf("hasLoneSurrogate(%s) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
