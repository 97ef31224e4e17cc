package acomm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// DefaultHTTPTimeout bounds a whole HTTP exchange made by Send and the
// tracker's response forwarding.
const DefaultHTTPTimeout = 30 * time.Second

// maxAckBody bounds how much of an HTTP acknowledgement is read.
const maxAckBody = 1 << 20

// httpClient is the client used for HTTP sends: every phase has a timeout.
var httpClient = &http.Client{
	Timeout: DefaultHTTPTimeout,
	Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: DefaultHTTPTimeout,
		ExpectContinueTimeout: time.Second,
	},
}

// Send attempts send the payload to the specified URL. For a unix URL it
// writes one frame and waits for the receiver's acknowledgement frame; an
// acknowledgement that carries an error is returned as an error matching
// ErrRefused (and, through RemoteError, the receiver's sentinel). For an
// http(s) URL it POSTs the JSON; a non-2xx status matches ErrHTTPStatus.
func Send(addr *url.URL, payload interface{}) error {
	if err := checkURL(addr); err != nil {
		return err
	}
	if addr.Scheme == "unix" {
		return sendUnix(unixPath(addr), payload, DefaultMaxFrameSize, DefaultIOTimeout)
	}
	return sendHTTP(httpClient, addr, payload)
}

// sendUnix sends payload as a frame to the socket at path and reads the
// acknowledgement, over a pooled connection when one is idle.
func sendUnix(path string, payload any, maxFrame int, ioTimeout time.Duration) error {
	return unixPool.send(path, payload, maxFrame, ioTimeout)
}

// exchange writes payload as a frame on conn and reads the acknowledgement,
// each bounded by ioTimeout. Failures that prove the peer did not read the
// frame also match errNotDelivered.
func exchange(conn net.Conn, payload any, maxFrame int, ioTimeout time.Duration) error {
	if err := conn.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		return fmt.Errorf("acomm: set deadline: %w", err)
	}
	if err := encodeFrame(conn, payload, maxFrame); err != nil {
		if notDelivered(err) {
			return fmt.Errorf("acomm: send frame: %w: %w", errNotDelivered, err)
		}
		return fmt.Errorf("acomm: send frame: %w", err)
	}
	var ack Response
	if err := decodeFrame(conn, &ack, maxFrame); err != nil {
		if notDelivered(err) {
			return fmt.Errorf("acomm: read acknowledgement: %w: %w", errNotDelivered, err)
		}
		return fmt.Errorf("acomm: read acknowledgement: %w", err)
	}
	if ack.Error != nil {
		return fmt.Errorf("%w: %w", ErrRefused, ack.Error)
	}
	return nil
}

// sendHTTP POSTs payload as JSON to addr and checks the acknowledgement.
func sendHTTP(client *http.Client, addr *url.URL, payload any) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("%w: marshal payload: %w", ErrInvalidArgument, err)
	}
	resp, err := client.Post(addr.String(), "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("acomm: post to %s: %w", addr.Redacted(), err)
	}
	defer resp.Body.Close()
	ackBody, err := io.ReadAll(io.LimitReader(resp.Body, maxAckBody))
	if err != nil {
		return fmt.Errorf("acomm: read acknowledgement from %s: %w", addr.Redacted(), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w: %s from %s: %s", ErrHTTPStatus, resp.Status, addr.Redacted(), bytes.TrimSpace(ackBody[:min(len(ackBody), 512)]))
	}
	var ack Response
	if json.Unmarshal(ackBody, &ack) == nil && ack.Error != nil {
		return fmt.Errorf("%w: %w", ErrRefused, ack.Error)
	}
	return nil
}
