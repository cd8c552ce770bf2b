package llm

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// scripted is an upstream transport inside a synctest bubble: each request gets a response
// whose body the test writes through the pipe handed out on bodies. Cancelling the request
// closes the pipe, as a real transport closes the connection.
type scripted struct {
	ctype  string
	hang   bool // never answer: wait for the request to be cancelled
	bodies chan *io.PipeWriter
}

func (s *scripted) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "Bearer "+providerKey && req.Header.Get("X-Api-Key") != providerKey {
		return nil, io.ErrUnexpectedEOF
	}
	if s.hang {
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	pr, pw := io.Pipe()
	go func() {
		<-req.Context().Done()
		pw.CloseWithError(req.Context().Err())
	}()
	s.bodies <- pw
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {s.ctype}}, Body: pr, Request: req}, nil
}

// bubbleGateway is a gateway whose upstream is transport and whose clients reach it in-process.
func bubbleGateway(t *testing.T, transport http.RoundTripper) (*Gateway, *fakeChecker) {
	ck := newChecker()
	gw, err := New(Config{
		Upstreams: map[Format]Upstream{
			ChatCompletions: {BaseURL: "http://upstream.test/v1", APIKey: providerKey},
			Responses:       {BaseURL: "http://upstream.test/v1", APIKey: providerKey},
			Messages:        {BaseURL: "http://upstream.test/v1", APIKey: providerKey},
		},
		Timeout:           30 * time.Second,
		StreamIdleTimeout: 5 * time.Second,
		Client:            &http.Client{Transport: transport},
	}, ck)
	if err != nil {
		t.Fatal(err)
	}
	return gw, ck
}

func bubbleOpenAI(gw http.Handler) openai.Client {
	return openai.NewClient(option.WithBaseURL("http://gateway.test/v1/"), option.WithAPIKey(agentKey),
		option.WithMaxRetries(0), option.WithHTTPClient(&http.Client{Transport: inProcess{gw}}))
}

func bubbleAnthropic(gw http.Handler) anthropic.Client {
	return anthropic.NewClient(aoption.WithBaseURL("http://gateway.test"), aoption.WithAPIKey(agentKey),
		aoption.WithMaxRetries(0), aoption.WithHTTPClient(&http.Client{Transport: inProcess{gw}}))
}

func TestUpstreamTimeout(t *testing.T) {
	cases := []struct {
		name string
		call func(gw http.Handler) error
	}{
		{"chat", func(gw http.Handler) error {
			c := bubbleOpenAI(gw)
			_, err := c.Chat.Completions.New(context.Background(), chatParams())
			return err
		}},
		{"responses", func(gw http.Handler) error {
			c := bubbleOpenAI(gw)
			_, err := c.Responses.New(context.Background(), responsesParams())
			return err
		}},
		{"messages", func(gw http.Handler) error {
			c := bubbleAnthropic(gw)
			_, err := c.Messages.New(context.Background(), anthropicParams())
			return err
		}},
		{"messages stream before headers", func(gw http.Handler) error {
			c := bubbleAnthropic(gw)
			s := c.Messages.NewStreaming(context.Background(), anthropicParams())
			for s.Next() {
			}
			return s.Err()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				gw, ck := bubbleGateway(t, &scripted{hang: true})
				start := time.Now()
				err := tc.call(gw)
				if err == nil {
					t.Fatal("a hanging upstream produced a successful answer")
				}
				status, body := statusOf(t, err)
				if status != http.StatusGatewayTimeout || !strings.Contains(body, codeUpstreamTimeout) {
					t.Errorf("got %d %s, want 504 %s", status, body, codeUpstreamTimeout)
				}
				if waited := time.Since(start); waited != 30*time.Second {
					t.Errorf("gave up after %s, want the configured 30s", waited)
				}
				if len(ck.calls) != 0 {
					t.Errorf("tool calls checked: %+v", ck.calls)
				}
			})
		})
	}
}

// A stream that goes silent mid tool call ends with a timeout error; the held call never
// reaches the agent.
func TestStreamIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &scripted{ctype: "text/event-stream", bodies: make(chan *io.PipeWriter, 1)}
		gw, _ := bubbleGateway(t, up)
		full := string(fixture(t, "chat_stream_two_tools.sse"))
		part := strings.Join(strings.SplitAfter(full, "\n\n")[:3], "") // role + first argument fragments
		go func() {
			pw := <-up.bodies
			_, _ = io.WriteString(pw, part) // then silence
		}()
		c := bubbleOpenAI(gw)
		start := time.Now()
		s := c.Chat.Completions.NewStreaming(context.Background(), chatParams())
		acc := openai.ChatCompletionAccumulator{}
		for s.Next() {
			acc.AddChunk(s.Current())
		}
		err := s.Err()
		if err == nil || !strings.Contains(err.Error(), codeUpstreamTimeout) {
			t.Fatalf("stream error = %v, want %s", err, codeUpstreamTimeout)
		}
		if waited := time.Since(start); waited != 5*time.Second {
			t.Errorf("gave up after %s, want the 5s idle timeout", waited)
		}
		if n := len(acc.Choices); n > 0 && len(acc.Choices[0].Message.ToolCalls) > 0 {
			t.Errorf("an incomplete tool call reached the agent: %+v", acc.Choices[0].Message.ToolCalls)
		}
	})
}

// Text deltas reach the agent as they arrive: the upstream sends one chunk and waits until
// the agent has seen it. A gateway that buffered would deadlock, which synctest reports.
func TestTextStreamsUnbuffered(t *testing.T) {
	cases := []struct {
		name, fixture string
		firstText     func(gw http.Handler, ready chan<- string) error
	}{
		{"chat", "chat_stream_text.sse", func(gw http.Handler, ready chan<- string) error {
			c := bubbleOpenAI(gw)
			s := c.Chat.Completions.NewStreaming(context.Background(), chatParams())
			got := ""
			for s.Next() {
				if len(s.Current().Choices) > 0 && s.Current().Choices[0].Delta.Content != "" && got == "" {
					got = s.Current().Choices[0].Delta.Content
					ready <- got
				}
			}
			return s.Err()
		}},
		{"messages", "messages_stream_text.sse", func(gw http.Handler, ready chan<- string) error {
			c := bubbleAnthropic(gw)
			s := c.Messages.NewStreaming(context.Background(), anthropicParams())
			got := ""
			for s.Next() {
				if d := s.Current().Delta.Text; d != "" && got == "" {
					got = d
					ready <- got
				}
			}
			return s.Err()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				up := &scripted{ctype: "text/event-stream", bodies: make(chan *io.PipeWriter, 1)}
				gw, _ := bubbleGateway(t, up)
				events := strings.SplitAfter(string(fixture(t, tc.fixture)), "\n\n")
				first := 0
				for first < len(events) && !strings.Contains(events[first], "The") {
					first++
				}
				ready := make(chan string)
				errc := make(chan error, 1)
				go func() { errc <- tc.firstText(gw, ready) }()
				pw := <-up.bodies
				_, _ = io.WriteString(pw, strings.Join(events[:first+1], ""))
				if got := <-ready; got != "The" {
					t.Errorf("first text = %q, want %q", got, "The")
				}
				_, _ = io.WriteString(pw, strings.Join(events[first+1:], ""))
				pw.Close()
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}
