package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/acommgo/acomm"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newStreamCmd() *cobra.Command {
	var output, tokenFile string
	cmd := &cobra.Command{
		Use:   "stream [flags] <stream-url>",
		Short: "Copy a stream URL to stdout or a file",
		Long: `Copy a stream, as announced in a response's stream_url, to stdout or
to FILE. Unix stream URLs can be read once; so can a bridge's /stream URLs,
which need the bridge's token (--token-file).`,
		Example: `  acomm stream unix:///tmp/acomm-123/stream-9f2c.sock > result.bin
  acomm stream --token-file token -o result.bin 'http://bridge:8080/stream?addr=...'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, err := parseServiceURL(args[0])
			if err != nil {
				return err
			}
			token, err := readToken(tokenFile)
			if err != nil {
				return err
			}
			if output == "" {
				if err := copyStream(cmd.Context(), cmd.OutOrStdout(), u, token); err != nil {
					return noAnswerErr(err)
				}
				return nil
			}
			return saveStream(cmd.Context(), cmd.ErrOrStderr(), u, output, token)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to `FILE` instead of stdout")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "read the bridge's bearer token from `FILE`")
	return cmd
}

// saveStream copies the stream at u into the file at path, with a progress
// bar on stderr when stderr is a terminal.
func saveStream(ctx context.Context, stderr io.Writer, u *url.URL, path, token string) error {
	f, err := os.Create(path)
	if err != nil {
		return usageErr("create %s: %w", path, err)
	}
	var dst io.Writer = f
	if tf, ok := stderr.(*os.File); ok && term.IsTerminal(int(tf.Fd())) {
		bar := progressbar.DefaultBytes(-1, "receiving")
		defer bar.Finish()
		dst = io.MultiWriter(f, bar)
	}
	if err := copyStream(ctx, dst, u, token); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return noAnswerErr(err)
	}
	if err := f.Close(); err != nil {
		return noAnswerErr(fmt.Errorf("close %s: %w", path, err))
	}
	return nil
}

// copyStream copies the stream at u to dst; http(s) streams are fetched
// with the bearer token when there is one.
func copyStream(ctx context.Context, dst io.Writer, u *url.URL, token string) error {
	if u.Scheme == "unix" || token == "" {
		return acomm.Stream(dst, u)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("get stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("stream: %s: %s", resp.Status, msg)
	}
	if _, err := io.Copy(dst, resp.Body); err != nil {
		return fmt.Errorf("read stream: %w", err)
	}
	return nil
}
