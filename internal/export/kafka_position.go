package export

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Positions committed with the records. Each Kafka transaction of an
// export also commits, for the export's consumer group (its transactional
// id, "bulwark-export-<name>"), the offset after the batch's last record
// in every partition the batch wrote, with the batch's last export-log
// position as the offset's metadata — a transactional offset commit, the
// one Kafka's consume-transform-produce uses, so it is committed or aborted
// with the records. The group's offsets therefore name exactly the last
// position committed to the topic, and a new producer session reads it in
// one OffsetFetch (require_stable: after the fence, any transaction of an
// older producer has ended) instead of searching the topic: the position
// is found however much other traffic has been written since. The group
// never has members; its offsets read like a consumer that has consumed
// up to the export's last record.
//
// The search (recover) remains for what the group cannot answer: records
// written before positions were committed, offsets expired
// (offsets.retention.minutes after the last commit, 7 days by default,
// when an export delivered nothing that long), or a principal without the
// group ACL (Read on the group), which is warned about and delivers
// without positions.

// kafkaUnstableWait bounds how long recovery waits for the group's offsets
// to be stable.
const kafkaUnstableWait = 2 * time.Second

// group is the export's consumer group (its transactional id).
func (k *kafkaExporter) group() string { return "bulwark-export-" + k.c.Name }

// transactionsV2 reports that the cluster runs transaction version 2
// (KIP-890 part 2), where TxnOffsetCommit adds the group to the
// transaction itself and an AddOffsetsToTxn is not sent — the same test
// franz-go makes for its own requests.
func (k *kafkaExporter) transactionsV2(ctx context.Context, cl *kgo.Client) (bool, error) {
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName, req.ClientSoftwareVersion = "bulwark", "1"
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return false, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return false, err
	}
	for _, f := range resp.FinalizedFeatures {
		if f.Name == "transaction.version" && f.MaxVersionLevel >= 2 {
			return true, nil
		}
	}
	return false, nil
}

// commitPosition adds to the open transaction the offset commit that
// records pos: for each partition res wrote, the offset after its last
// record, with pos as metadata. k.mu is held.
func (k *kafkaExporter) commitPosition(ctx context.Context, cl *kgo.Client, res kgo.ProduceResults, pos LogPos) error {
	if !k.positions || k.noGroup || pos.IsZero() || len(res) == 0 {
		return nil
	}
	ends := map[int32]int64{}
	for _, pr := range res {
		ends[pr.Record.Partition] = max(ends[pr.Record.Partition], pr.Record.Offset+1)
	}
	id, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		return err
	}
	txnID := "bulwark-export-" + k.c.Name
	if !k.implicitGroup {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = txnID, id, epoch, k.group()
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("add offsets to the transaction: %w", err)
		}
		if err := k.groupErr(kerr.ErrorForCode(resp.ErrorCode)); err != nil {
			return fmt.Errorf("add offsets to the transaction: %w", err)
		}
		if k.noGroup {
			return nil
		}
	}
	if k.topicID == ([16]byte{}) {
		// Named by id from TxnOffsetCommit v6; the topic may have been
		// created by this batch.
		meta, err := k.metadata(ctx, cl)
		if err != nil || meta == nil {
			return fmt.Errorf("read the topic's id: %v", cmp.Or(err, errors.New("no such topic")))
		}
		k.topicID = meta.TopicID
	}
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = txnID, k.group(), id, epoch
	req.Generation = -1 // no member: an admin-style commit
	meta := pos.String()
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic, rt.TopicID = k.c.Topic, k.topicID
	for _, p := range slices.Sorted(maps.Keys(ends)) {
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p, ends[p], -1, &meta
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("commit the position: %w", err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := k.groupErr(kerr.ErrorForCode(p.ErrorCode)); err != nil {
				return fmt.Errorf("commit the position, partition %d: %w", p.Partition, err)
			}
		}
	}
	return nil
}

// groupErr is err, except that a group the principal may not use turns
// positions off for the session (a warning; the records are still
// committed, recovery then searches).
func (k *kafkaExporter) groupErr(err error) error {
	if !errors.Is(err, kerr.GroupAuthorizationFailed) {
		return err
	}
	if !k.noGroup {
		k.noGroup = true
		k.deps.Logger.Warn("kafka export may not use its consumer group: positions are not committed with the records, and a restart searches the topic for them (grant Read on the group)",
			"export", k.c.Name, "group", k.group(), "error", err)
	}
	return nil
}

// committedPosition is the position the export's group's offsets carry for
// the topic's partitions: the largest of their metadata. ok is false when
// the group has none (or they cannot be read: logged), and the topic must
// be searched.
func (k *kafkaExporter) committedPosition(ctx context.Context, cl *kgo.Client, parts []kafkaPartition) (last LogPos, ok bool) {
	if len(parts) == 0 {
		return LogPos{}, false
	}
	// An older producer's transaction is being ended (the fence aborts it;
	// its markers are on their way): unstable for milliseconds. Waiting is
	// bounded so that a transaction left open by something else leaves
	// time for the search.
	deadline := time.Now().Add(kafkaUnstableWait)
	for attempt := 1; ; attempt++ {
		last, ok, err := k.fetchPosition(ctx, cl, parts)
		if err == nil {
			return last, ok
		}
		if (errors.Is(err, kerr.UnstableOffsetCommit) || kerr.IsRetriable(err)) && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(min(attempt, 10)) * 50 * time.Millisecond):
				continue
			}
		}
		if !errors.Is(err, kerr.GroupAuthorizationFailed) && !errors.Is(err, kerr.GroupIDNotFound) {
			k.deps.Logger.Warn("kafka recovery could not read the export's committed position; searching the topic",
				"export", k.c.Name, "group", k.group(), "error", err)
		}
		return LogPos{}, false
	}
}

// fetchPosition asks the group coordinator once (read stable).
func (k *kafkaExporter) fetchPosition(ctx context.Context, cl *kgo.Client, parts []kafkaPartition) (LogPos, bool, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.RequireStable = true
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = k.group()
	rt := kmsg.NewOffsetFetchRequestGroupTopic()
	rt.Topic = k.c.Topic
	for _, p := range parts {
		rt.Partitions = append(rt.Partitions, p.id)
	}
	rg.Topics = append(rg.Topics, rt)
	req.Groups = append(req.Groups, rg)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return LogPos{}, false, err
	}
	var last LogPos
	found := false
	for _, g := range resp.Groups {
		if g.Group != k.group() {
			continue
		}
		if err := kerr.ErrorForCode(g.ErrorCode); err != nil {
			return LogPos{}, false, err
		}
		for _, t := range g.Topics {
			if t.Topic != k.c.Topic {
				continue
			}
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return LogPos{}, false, fmt.Errorf("partition %d: %w", p.Partition, err)
				}
				if p.Offset < 0 || p.Metadata == nil {
					continue // nothing committed for this partition
				}
				pos, ok := parseLogPos(*p.Metadata)
				if !ok {
					continue // committed by something else
				}
				found = true
				if last.Less(pos) {
					last = pos
				}
			}
		}
	}
	return last, found, nil
}
