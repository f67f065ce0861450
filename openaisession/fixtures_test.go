package openaisession_test

import "encoding/json"

// fixture is a stored item and the Of field of
// responses.ResponseInputItemUnionParam it decodes into.
type fixture struct {
	name    string
	variant string
	raw     string
}

// fixtures has at least one item for every Of field of
// ResponseInputItemUnionParam (TestFixturesCoverEveryVariant checks it), in
// the form the Responses API returns or takes them, and more for the cases
// that used to lose data: messages without "type", assistant output
// messages, fields openai-go does not know, nulls, and numbers spelled in
// other ways.
var fixtures = []fixture{
	// Messages.
	{"easy user message", "OfMessage", `{"role":"user","content":"Hello I live in SF!"}`},
	{"easy message with parts", "OfMessage", `{"role":"user","content":[{"type":"input_text","text":"What is in this image?"},{"type":"input_image","image_url":"https://example.com/a.png","detail":"auto"}]}`},
	{"easy assistant message", "OfMessage", `{"role":"assistant","content":"You said SF."}`},
	{"typed developer message", "OfMessage", `{"type":"message","role":"developer","content":"Answer in one sentence."}`},
	{"assistant message without id", "OfMessage", `{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Hi","annotations":[]}]}`},
	{"assistant message with id and text content", "OfMessage", `{"type":"message","id":"msg_4","role":"assistant","status":"completed","content":"You said SF."}`},
	{"typed user message with text content", "OfMessage", `{"type":"message","role":"user","content":"What's the weather in SF?"}`},
	{"input message", "OfInputMessage", `{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"},{"type":"input_file","file_id":"file-1"}]}`},
	{"input message with id and status", "OfInputMessage", `{"type":"message","id":"msg_in","role":"system","status":"completed","content":[{"type":"input_text","text":"Be brief."}]}`},
	{"assistant output message", "OfOutputMessage", `{"id":"msg_68a1","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"You live in SF."}],"role":"assistant"}`},
	{"output message with phase and annotations", "OfOutputMessage", `{"type":"message","id":"msg_2","role":"assistant","status":"incomplete","phase":"final_answer","content":[{"type":"output_text","text":"See [1].","annotations":[{"type":"url_citation","start_index":4,"end_index":7,"url":"https://example.com","title":"Example"}]},{"type":"refusal","refusal":"No."}]}`},

	// Tool calls and their outputs.
	{"function call", "OfFunctionCall", `{"id":"fc_1","type":"function_call","status":"completed","arguments":"{\"city\":\"SF\"}","call_id":"call_1","name":"get_weather"}`},
	{"function call output", "OfFunctionCallOutput", `{"type":"function_call_output","call_id":"call_1","output":"18C and sunny"}`},
	{"function call output with parts", "OfFunctionCallOutput", `{"type":"function_call_output","call_id":"call_1","output":[{"type":"input_text","text":"see image"},{"type":"input_image","image_url":"https://example.com/b.png"}],"status":"completed"}`},
	{"custom tool call", "OfCustomToolCall", `{"type":"custom_tool_call","id":"ctc_1","call_id":"call_ct","name":"grep","input":"TODO"}`},
	{"custom tool call output", "OfCustomToolCallOutput", `{"type":"custom_tool_call_output","call_id":"call_ct","output":"main.go:12: TODO"}`},
	{"computer call", "OfComputerCall", `{"type":"computer_call","id":"cu_1","call_id":"call_cu","action":{"type":"click","button":"left","x":120,"y":48},"pending_safety_checks":[],"status":"completed"}`},
	{"computer call output", "OfComputerCallOutput", `{"type":"computer_call_output","call_id":"call_cu","output":{"type":"computer_screenshot","image_url":"data:image/png;base64,iVBORw0KGgo="},"acknowledged_safety_checks":[]}`},
	{"local shell call", "OfLocalShellCall", `{"type":"local_shell_call","id":"lsh_1","call_id":"call_lsh","status":"completed","action":{"type":"exec","command":["ls","-l"],"env":{"LANG":"C"},"timeout_ms":2000,"working_directory":"/tmp"}}`},
	{"local shell call output", "OfLocalShellCallOutput", `{"type":"local_shell_call_output","id":"call_lsh","output":"total 0\n"}`},
	{"shell call", "OfShellCall", `{"type":"shell_call","id":"sh_1","call_id":"call_sh","status":"completed","action":{"commands":["go version"],"timeout_ms":10000,"max_output_length":4096}}`},
	{"shell call output", "OfShellCallOutput", `{"type":"shell_call_output","call_id":"call_sh","max_output_length":4096,"output":[{"stdout":"go version go1.26\n","stderr":"","outcome":{"type":"exit","exit_code":0}}]}`},
	{"apply patch call", "OfApplyPatchCall", `{"type":"apply_patch_call","id":"ap_1","call_id":"call_ap","status":"completed","operation":{"type":"update_file","path":"main.go","diff":"@@ -1 +1 @@\n-a\n+b\n"}}`},
	{"apply patch call output", "OfApplyPatchCallOutput", `{"type":"apply_patch_call_output","call_id":"call_ap","status":"completed","output":"patched main.go"}`},
	{"tool search call", "OfToolSearchCall", `{"type":"tool_search_call","id":"tsc_1","call_id":"call_ts","execution":"client","status":"completed","arguments":{"query":"weather"}}`},
	{"tool search output", "OfToolSearchOutput", `{"type":"tool_search_output","id":"tso_1","call_id":"call_ts","execution":"client","status":"completed","tools":[{"type":"function","name":"get_weather","description":"Weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}]}`},
	{"program", "OfProgram", `{"type":"program","id":"prg_1","call_id":"call_prg","code":"const w = await tools.get_weather({city: \"SF\"});","fingerprint":"fp_1"}`},
	{"program output", "OfProgramOutput", `{"type":"program_output","id":"prgo_1","call_id":"call_prg","result":"18C","status":"completed"}`},

	// Hosted tools.
	{"web search call", "OfWebSearchCall", `{"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":"weather in SF","sources":[{"type":"url","url":"https://example.com"}]}}`},
	{"file search call", "OfFileSearchCall", `{"type":"file_search_call","id":"fs_1","status":"completed","queries":["refund policy"],"results":[{"file_id":"file-1","filename":"policy.pdf","score":0.87,"text":"Refunds within 30 days.","attributes":{"year":2025,"public":true,"team":"support"}}]}`},
	{"code interpreter call", "OfCodeInterpreterCall", `{"type":"code_interpreter_call","id":"ci_1","container_id":"cntr_1","code":"print(6*7)","status":"completed","outputs":[{"type":"logs","logs":"42\n"},{"type":"image","url":"https://example.com/plot.png"}]}`},
	{"image generation call", "OfImageGenerationCall", `{"type":"image_generation_call","id":"ig_1","status":"completed","result":"iVBORw0KGgo="}`},
	{"mcp list tools", "OfMcpListTools", `{"type":"mcp_list_tools","id":"mcpl_1","server_label":"deepwiki","tools":[{"name":"ask_question","description":"Ask a question","input_schema":{"type":"object","properties":{"q":{"type":"string"}}},"annotations":{"read_only":true}}]}`},
	{"mcp approval request", "OfMcpApprovalRequest", `{"type":"mcp_approval_request","id":"mcpr_1","server_label":"deepwiki","name":"ask_question","arguments":"{\"q\":\"What is MCP?\"}"}`},
	{"mcp approval response", "OfMcpApprovalResponse", `{"type":"mcp_approval_response","approval_request_id":"mcpr_1","approve":false,"reason":"not now"}`},
	{"mcp call", "OfMcpCall", `{"type":"mcp_call","id":"mcp_1","server_label":"deepwiki","name":"ask_question","arguments":"{\"q\":\"What is MCP?\"}","output":"A protocol.","error":null,"status":"completed","approval_request_id":"mcpr_1"}`},

	// Reasoning, context management and references.
	{"reasoning", "OfReasoning", `{"id":"rs_68a1","type":"reasoning","summary":[]}`},
	{"reasoning with summary and encrypted content", "OfReasoning", `{"type":"reasoning","id":"rs_2","summary":[{"type":"summary_text","text":"**Weather lookup**\n\nThe user asks about SF."}],"content":[{"type":"reasoning_text","text":"..."}],"encrypted_content":"gAAAAABo_encrypted","status":"completed"}`},
	{"compaction", "OfCompaction", `{"type":"compaction","id":"cmp_1","encrypted_content":"gAAAAABo_compacted"}`},
	{"compaction trigger", "OfCompactionTrigger", `{"type":"compaction_trigger"}`},
	{"additional tools", "OfAdditionalTools", `{"type":"additional_tools","role":"developer","tools":[{"type":"function","name":"get_time","parameters":{"type":"object","properties":{}},"strict":false}]}`},
	{"configuration update", "OfConfigurationUpdate", `{"type":"configuration_update","id":"cfg_1","reasoning":{"effort":"low"},"text":{"verbosity":"low"}}`},
	{"item reference", "OfItemReference", `{"type":"item_reference","id":"msg_68a1"}`},
	{"item reference without type", "OfItemReference", `{"id":"msg_68a1"}`},

	// What openai-go's types cannot hold by themselves.
	{"unknown top-level field", "OfFunctionCall", `{"type":"function_call","call_id":"call_9","name":"f","arguments":"{}","provider_data":{"model":"gpt-5","tokens":[1,2,3]}}`},
	{"unknown field in a content part", "OfOutputMessage", `{"type":"message","id":"msg_3","role":"assistant","status":"completed","content":[{"type":"output_text","text":"x","annotations":[],"future":{"a":null}}]}`},
	{"unknown field in an input message's part", "OfInputMessage", `{"type":"message","role":"user","content":[{"type":"input_text","text":"hi","cache_hint":{"ttl":60,"tags":["a"]}}]}`},
	{"unknown field in an easy message's part", "OfMessage", `{"role":"user","content":[{"type":"input_text","text":"hi","cache_hint":null}]}`},
	{"unknown field in an annotation", "OfOutputMessage", `{"type":"message","id":"msg_5","role":"assistant","status":"completed","content":[{"type":"output_text","text":"See [1].","annotations":[{"type":"url_citation","start_index":4,"end_index":7,"url":"https://example.com","title":"Example","favicon":"https://example.com/f.ico"}]}]}`},
	{"unknown field in a tool output's part", "OfFunctionCallOutput", `{"type":"function_call_output","call_id":"call_1","output":[{"type":"input_text","text":"18C","lang":"en"}]}`},
	{"repeated key in a part", "OfInputMessage", `{"type":"message","role":"user","content":[{"type":"input_text","text":"first","text":"second"}]}`},
	{"null content", "OfMessage", `{"role":"user","content":null}`},
	{"reasoning without its summary list", "OfReasoning", `{"type":"reasoning","id":"rs_4"}`},
	{"explicit nulls", "OfReasoning", `{"type":"reasoning","id":"rs_3","summary":[],"encrypted_content":null,"status":null,"content":null}`},
	{"numbers spelled otherwise", "OfComputerCall", `{"type":"computer_call","id":"cu_2","call_id":"call_cu2","action":{"type":"scroll","x":1.0,"y":2e1,"scroll_x":0,"scroll_y":-300},"pending_safety_checks":[],"status":"completed"}`},
	{"numbers in typed fields, beyond float64", "OfComputerCall", `{"type":"computer_call","id":"cu_3","call_id":"call_cu3","action":{"type":"click","button":"left","x":12345678901234567890,"y":1E+2},"pending_safety_checks":[],"status":"completed"}`},
	{"big and precise numbers", "OfFunctionCall", `{"type":"function_call","call_id":"c","name":"f","arguments":"{}","seq":12345678901234567890,"ratio":0.1000000000000000055511151231257827}`},
	{"escapes and unicode", "OfMessage", `{"role":"user","content":"\u00e9t\u00e9 \ud83c\udf1e <b>&amp;</b> \"q\" \\ \u0000 \ud800"}`},
	{"empty key", "OfMessage", `{"role":"user","content":"hi","":"empty key"}`},
	{"key with path characters", "OfMessage", `{"role":"user","content":"hi","a.b|c#d*e?":1,"@x":[]}`},
	{"missing required fields", "OfFunctionCall", `{"type":"function_call"}`},
	{"wrong field types", "OfFunctionCallOutput", `{"type":"function_call_output","call_id":42,"output":{"not":"a string"}}`},
	{"repeated key", "OfMessage", `{"role":"user","content":"first","content":"second"}`},
}

func (f fixture) item() json.RawMessage { return json.RawMessage(f.raw) }
